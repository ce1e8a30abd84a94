// Model output as Markdown, safely. Three guards, each enough on its own for what it covers:
// 1. HTML the model writes is shown as text: marked's html tokens are escaped, never rendered.
// 2. DOMPurify sanitises what marked made (a `javascript:` link, say) and hands back nodes, not a
//    string, so no innerHTML is ever assigned.
// 3. The Content-Security-Policy (staticwebapp.config.json) allows no inline script and, through
//    Trusted Types, no HTML string into the DOM but DOMPurify's.

import { Marked } from "../vendor/marked.esm.js";
import DOMPurify from "../vendor/purify.es.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html({ text, block }) {
      return block ? `<p>${escape(text)}</p>` : escape(text);
    },
  },
});

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
  FORBID_ATTR: ["style"],
  ADD_ATTR: ["target"],
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

// The nodes of `text` rendered as Markdown, ready to append.
export function render(text) {
  return DOMPurify.sanitize(marked.parse(text), PURIFY);
}
