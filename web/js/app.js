// The chat page: the signed-in user's conversations beside the open one, and a box to write in.
// Every piece of text from the API or the model reaches the page as text (textContent) or through
// markdown.render; nothing here builds HTML from a string.

import * as api from "./api.js";
import { describe } from "./errors.js";
import { render } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const ui = {
  toggle: $("toggle-list"),
  sidebar: $("sidebar"),
  newConversation: $("new-conversation"),
  list: $("conversations"),
  listStatus: $("list-status"),
  moreConversations: $("more-conversations"),
  user: $("user"),
  signIn: $("sign-in"),
  signOut: $("sign-out"),
  title: $("conversation-title"),
  earlier: $("earlier"),
  messages: $("messages"),
  error: $("error"),
  errorText: $("error-text"),
  errorSignIn: $("error-sign-in"),
  composer: $("composer"),
  input: $("message"),
  send: $("send"),
};

const state = {
  conversationId: null, // the open conversation; null for a new one, not stored until its first turn
  earlierCursor: null,
  listCursor: null,
  busy: false,
  view: 0, // bumped on every switch, so an answer still streaming leaves the new view alone
  // The turn that failed last: sent again unchanged, in the same conversation, it keeps its
  // Idempotency-Key, so a turn stored though its answer was lost is shown, not stored twice.
  failed: null, // {text, conversationId, key}
};

// -- errors ------------------------------------------------------------------------------------

function showError(error) {
  if (!(error instanceof api.ApiError)) {
    console.error(error); // a fault of the page itself: the details are for its developers
    error = new api.ApiError(0, "page_error", "");
  }
  const { text, signIn } = describe(error);
  ui.errorText.textContent = text;
  ui.errorSignIn.hidden = !signIn;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

// -- who is signed in ----------------------------------------------------------------------------

async function showUser() {
  const me = await api.whoAmI();
  ui.signIn.hidden = true;
  ui.signOut.hidden = true;
  if (me.local) {
    ui.user.textContent = "Local developer";
    ui.user.title = "No sign-in here: every local caller is the one owner, app.";
  } else if (me.signedIn) {
    ui.user.textContent = me.name || "Signed in";
    ui.user.title = me.provider ? `Signed in with ${me.provider}` : "";
    ui.signOut.hidden = false;
  } else {
    ui.user.textContent = "Signed out";
    ui.signIn.hidden = false;
  }
}

// -- the conversation list -----------------------------------------------------------------------

function listItem(conversation) {
  const item = document.createElement("li");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  open.dataset.id = conversation.id;
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = conversation.title || "Untitled";
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = new Date(conversation.updated_at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  open.append(title, when);
  if (conversation.id === state.conversationId) open.setAttribute("aria-current", "true");
  open.addEventListener("click", () => openConversation(conversation.id));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete “${title.textContent}”`);
  remove.addEventListener("click", () => deleteConversation(conversation, item));
  item.append(open, remove);
  return item;
}

async function loadConversations({ more = false } = {}) {
  try {
    const page = await api.conversations(more ? state.listCursor : null);
    if (!more) ui.list.replaceChildren();
    ui.list.append(...page.conversations.map(listItem));
    state.listCursor = page.next;
    ui.moreConversations.hidden = !page.next;
    ui.listStatus.textContent = ui.list.children.length ? "" : "No conversations yet.";
  } catch (error) {
    ui.listStatus.textContent = "The conversations could not be loaded.";
    showError(error);
  }
}

function markCurrent() {
  for (const button of ui.list.querySelectorAll("button.open")) {
    if (button.dataset.id === state.conversationId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

async function deleteConversation(conversation, item) {
  if (!window.confirm(`Delete “${conversation.title || "Untitled"}”? This cannot be undone.`)) return;
  clearError();
  try {
    await api.deleteConversation(conversation.id);
  } catch (error) {
    showError(error);
    return;
  }
  const next = item.nextElementSibling ?? item.previousElementSibling;
  item.remove();
  if (!ui.list.children.length) ui.listStatus.textContent = "No conversations yet.";
  if (conversation.id === state.conversationId) startConversation();
  // Keep the keyboard where it was: on the next conversation, or the New button.
  (next?.querySelector("button.open") ?? ui.newConversation).focus();
}

// -- the open conversation -----------------------------------------------------------------------

function bubble(role, content, { markdown = false, note = null } = {}) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : role === "assistant" ? "Assistant" : "Tool";
  const body = document.createElement("div");
  body.className = "content";
  if (markdown) body.append(render(content));
  else body.textContent = content;
  item.append(who, body);
  if (note) {
    const small = document.createElement("p");
    small.className = "note";
    small.textContent = note;
    item.append(small);
  }
  return item;
}

function historyBubble(message) {
  if (message.type === "function_call") {
    return bubble("tool", `${message.name}(${message.arguments})`, { note: "A tool call" });
  }
  if (message.type === "function_call_output") return bubble("tool", message.content, { note: "A tool's output" });
  return bubble(message.role === "user" ? "user" : "assistant", message.content, {
    markdown: message.role === "assistant",
  });
}

function setLocation() {
  const hash = state.conversationId === null ? "" : `#${encodeURIComponent(state.conversationId)}`;
  if (window.location.hash !== hash) history.replaceState(null, "", hash || window.location.pathname);
}

function startConversation() {
  state.view += 1;
  state.conversationId = null;
  state.earlierCursor = null;
  ui.messages.replaceChildren();
  ui.earlier.hidden = true;
  ui.title.textContent = "New conversation";
  document.title = "Chat";
  setLocation();
  markCurrent();
  closeList();
  ui.input.focus();
}

async function openConversation(id) {
  state.view += 1;
  const view = state.view;
  clearError();
  closeList();
  let page;
  try {
    page = await api.messages(id);
  } catch (error) {
    if (view !== state.view) return;
    showError(error);
    if (error.code === "conversation_not_found") startConversation();
    return;
  }
  if (view !== state.view) return;
  state.conversationId = id;
  state.earlierCursor = page.next;
  ui.messages.replaceChildren(...page.messages.map(historyBubble));
  ui.earlier.hidden = !page.next;
  const title = ui.list.querySelector(`button.open[data-id="${CSS.escape(id)}"] .title`)?.textContent;
  ui.title.textContent = title || "Conversation";
  document.title = `${ui.title.textContent} – Chat`;
  setLocation();
  markCurrent();
  scrollToEnd();
  ui.input.focus();
}

async function loadEarlier() {
  const view = state.view;
  try {
    const page = await api.messages(state.conversationId, state.earlierCursor);
    if (view !== state.view) return;
    ui.messages.prepend(...page.messages.map(historyBubble));
    state.earlierCursor = page.next;
    ui.earlier.hidden = !page.next;
    if (!page.next) ui.messages.firstElementChild?.setAttribute("tabindex", "-1");
    (page.next ? ui.earlier : ui.messages.firstElementChild)?.focus();
  } catch (error) {
    showError(error);
  }
}

function scrollToEnd() {
  const scroller = ui.messages.parentElement;
  scroller.scrollTop = scroller.scrollHeight;
}

// -- a turn --------------------------------------------------------------------------------------

function setBusy(busy) {
  state.busy = busy;
  ui.send.disabled = busy;
  ui.composer.setAttribute("aria-busy", String(busy));
}

async function sendMessage() {
  const text = ui.input.value;
  if (state.busy) return;
  if (!text.trim()) {
    showError(new api.ApiError(0, "empty_message", ""));
    return;
  }
  clearError();
  setBusy(true);
  const view = state.view;
  const mine = bubble("user", text);
  const answer = bubble("assistant", "");
  answer.setAttribute("aria-busy", "true");
  const content = answer.querySelector(".content");
  ui.messages.append(mine, answer);
  ui.input.value = "";
  scrollToEnd();

  const again = state.failed;
  const conversationId = state.conversationId;
  const key =
    again && again.text === text && again.conversationId === conversationId ? again.key : crypto.randomUUID();
  state.failed = null;
  let written = "";
  let pending = false;
  const paint = () => {
    pending = false;
    content.replaceChildren(render(written));
    if (view === state.view) scrollToEnd();
  };
  try {
    for await (const event of api.streamTurn(text, conversationId, key)) {
      if (event.conversationId !== undefined && view === state.view && state.conversationId === null) {
        state.conversationId = event.conversationId;
        setLocation();
      }
      if (event.text !== undefined) {
        written += event.text;
        if (!pending) {
          pending = true;
          requestAnimationFrame(paint);
        }
      }
    }
    paint();
    answer.removeAttribute("aria-busy");
    await loadConversations();
    if (view === state.view) {
      markCurrent();
      const title = ui.list.querySelector("button.open[aria-current] .title")?.textContent;
      if (title) {
        ui.title.textContent = title;
        document.title = `${title} – Chat`;
      }
    }
  } catch (error) {
    // A failed turn is not stored (or, if storage's answer was lost, is found by its key when
    // sent again): take it off the page and give the text back to edit or send again.
    state.failed = { text, conversationId, key };
    mine.remove();
    answer.remove();
    if (view === state.view && !ui.input.value) ui.input.value = text;
    if (!ui.messages.children.length && view === state.view) {
      state.conversationId = null;
      setLocation();
    }
    showError(error);
  } finally {
    setBusy(false);
  }
}

// -- the list at phone width ---------------------------------------------------------------------

function openList() {
  document.body.classList.add("list-open");
  ui.toggle.setAttribute("aria-expanded", "true");
  ui.sidebar.querySelector("button")?.focus();
}

function closeList() {
  if (!document.body.classList.contains("list-open")) return;
  document.body.classList.remove("list-open");
  ui.toggle.setAttribute("aria-expanded", "false");
}

// -- wiring --------------------------------------------------------------------------------------

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
ui.input.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter starts a new line; Enter that ends an IME composition does neither.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});
ui.newConversation.addEventListener("click", startConversation);
ui.moreConversations.addEventListener("click", () => loadConversations({ more: true }));
ui.earlier.addEventListener("click", loadEarlier);
ui.toggle.addEventListener("click", () => {
  if (document.body.classList.contains("list-open")) closeList();
  else openList();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.classList.contains("list-open")) {
    closeList();
    ui.toggle.focus();
  }
});

function conversationInLocation() {
  try {
    return window.location.hash ? decodeURIComponent(window.location.hash.slice(1)) : null;
  } catch {
    return null; // not percent-encoded text: no conversation this page put there
  }
}

async function start() {
  const fromLocation = conversationInLocation();
  await Promise.all([showUser(), loadConversations()]);
  if (fromLocation) await openConversation(fromLocation);
  else ui.input.focus();
  document.body.dataset.ready = "true";
}

start();
