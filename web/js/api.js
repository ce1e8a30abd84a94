// The chat API under this site's /api, and who is signed in, as the page uses them.
//
// Every request is sent with `redirect: "manual"`: behind Static Web Apps a signed-out request is
// redirected to the sign-in page of another site, which fetch could not follow; the page reads
// that redirect, like a 401, as "signed out".

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const SIGNED_OUT = () => new ApiError(401, "signed_out", "");

// A conversation ID as one path segment; "." and ".." would otherwise read as path steps.
export function segment(id) {
  const encoded = encodeURIComponent(id);
  return encoded === "." || encoded === ".." ? encoded.replaceAll(".", "%2E") : encoded;
}

async function send(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, redirect: "manual", credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "");
  }
  if (response.type === "opaqueredirect") throw SIGNED_OUT();
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy's or the platform's own error page. The status says enough.
  }
  const error = body && typeof body.error === "object" && body.error !== null ? body.error : {};
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return new ApiError(
    response.status,
    typeof error.code === "string" ? error.code : `http_${response.status}`,
    typeof error.message === "string" ? error.message : "",
    Number.isFinite(retryAfter) ? retryAfter : null,
  );
}

export async function conversations(cursor = null) {
  const query = new URLSearchParams({ limit: "50" });
  if (cursor) query.set("cursor", cursor);
  return (await send(`/api/conversations?${query}`)).json();
}

export async function messages(id, cursor = null) {
  const query = new URLSearchParams({ limit: "50" });
  if (cursor) query.set("cursor", cursor);
  return (await send(`/api/conversations/${segment(id)}/messages?${query}`)).json();
}

export async function deleteConversation(id) {
  await send(`/api/conversations/${segment(id)}`, { method: "DELETE" });
}

// One turn, streamed: yields {conversationId} first, then {text} pieces, then {context} last.
// A failure, before the stream or as its last line, is thrown as an ApiError; so is a stream
// that ends without its last line (the connection dropped). `idempotencyKey` names the turn: a
// turn sent again with its key is answered with what was stored, never stored twice.
export async function* streamTurn(text, conversationId, idempotencyKey) {
  const body = { messages: [{ role: "user", content: text }] };
  if (conversationId !== null) body.sessionState = conversationId;
  const response = await send("/api/chat/stream", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/jsonl",
      "Idempotency-Key": idempotencyKey,
    },
    body: JSON.stringify(body),
  });
  let finished = false;
  for await (const line of lines(response.body)) {
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      throw new ApiError(response.status, "bad_stream", "");
    }
    if (event.error) {
      throw new ApiError(response.status, event.error.code ?? "stream_failed", event.error.message ?? "");
    }
    if (typeof event.sessionState === "string") yield { conversationId: event.sessionState };
    if (event.delta && typeof event.delta.content === "string") yield { text: event.delta.content };
    if (event.context) {
      finished = true;
      yield { context: event.context };
    }
  }
  if (!finished) throw new ApiError(0, "stream_cut", "");
}

async function* lines(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        throw new ApiError(0, "stream_cut", "");
      }
      if (chunk.done) break;
      buffered += chunk.value;
      const complete = buffered.split("\n");
      buffered = complete.pop();
      for (const line of complete) if (line.trim()) yield line;
    }
    if (buffered.trim()) yield buffered;
  } finally {
    reader.releaseLock();
  }
}

// Who is signed in: {signedIn: true, name, provider} from Static Web Apps' /.auth/me, or
// {signedIn: false}; {local: true} where there is no /.auth/me (scripts/run, func start).
export async function whoAmI() {
  let response;
  try {
    response = await fetch("/.auth/me", { redirect: "manual", credentials: "same-origin" });
  } catch {
    return { local: true };
  }
  if (response.type === "opaqueredirect" || response.status === 401) return { signedIn: false };
  let body = null;
  if (response.ok) {
    try {
      body = await response.json();
    } catch {
      // A page, not the platform's answer: no sign-in here.
    }
  }
  if (body === null || typeof body !== "object" || !("clientPrincipal" in body)) return { local: true };
  const principal = body.clientPrincipal;
  if (!principal) return { signedIn: false };
  return { signedIn: true, name: String(principal.userDetails || principal.userId || ""), provider: principal.identityProvider };
}
