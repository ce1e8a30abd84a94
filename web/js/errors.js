// What went wrong, in words a person understands. The API's error codes are in
// chat/engine/errors.py and the README's error table; an unknown code falls back to the API's
// own message, then to the status.

function inTime(seconds) {
  if (seconds === null || seconds <= 1) return "in a moment";
  if (seconds < 90) return `in ${seconds} seconds`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `in ${minutes} minutes`;
  return `in about ${Math.round(minutes / 60)} hours`;
}

const BY_CODE = {
  signed_out: () => "You are signed out. Sign in again to go on.",
  unauthenticated: () => "You are signed out. Sign in again to go on.",
  invalid_client_principal: () => "Your sign-in could not be read. Sign in again to go on.",
  network: () => "The chat service cannot be reached. Check your connection and try again.",
  page_error: () => "Something went wrong on this page. Reload it and try again.",
  bad_stream: () => "The chat service sent an answer this page cannot read. Try again.",
  stream_cut: () => "The answer was cut off before it finished, and was not saved. Try again.",
  message_too_large: (e) => `Your message is too long. ${e.message}`.trim(),
  request_too_large: () => "Your message is too long to send.",
  empty_message: () => "Type a message first.",
  rate_limited: (e) => `The assistant is busy with too many requests. Try again ${inTime(e.retryAfter)}.`,
  quota_exceeded: (e) => `You have used up your quota of messages for now. Try again ${inTime(e.retryAfter)}.`,
  conversation_busy: () => "This conversation is still answering another message. Try again in a moment.",
  conversation_not_found: () => "This conversation no longer exists. It may have been deleted.",
  content_filter: () => "The assistant's content filter refused this message. Rephrase it and try again.",
  context_length_exceeded: () => "This message is too long for the model. Shorten it and try again.",
  model_timeout: () => "The assistant took too long to answer. Try again.",
  storage_unavailable: () => "The chat service cannot save conversations right now. Try again in a moment.",
  configuration_error: () => "The chat service is not set up correctly. Tell whoever runs it.",
  model_stream_interrupted: () => "The answer was cut off before it finished, and was not saved. Try again.",
  answer_too_large: () => "The answer was too long to save. Ask for a shorter one.",
  duplicate_request: () => "This message was already sent from another tab. Reload to see its answer.",
  server_shutting_down: () => "The chat service restarted while answering; the answer was not saved. Try again.",
};

const BY_STATUS = {
  401: BY_CODE.signed_out,
  403: () => "You are not allowed to do that.",
  413: () => "Your message is too long to send.",
  429: BY_CODE.rate_limited,
  502: () => "The assistant is unavailable right now. Try again in a moment.",
  503: () => "The assistant is unavailable right now. Try again in a moment.",
  504: BY_CODE.model_timeout,
};

// {text, signIn}: the sentence to show, and whether signing in again is the way out.
export function describe(error) {
  const code = error?.code;
  const status = error?.status;
  const signIn = code === "signed_out" || status === 401;
  const byCode = Object.hasOwn(BY_CODE, code) ? BY_CODE[code] : null;
  if (byCode) return { text: byCode(error), signIn };
  if (typeof code === "string" && code.startsWith("model_")) return { text: BY_STATUS[503](error), signIn };
  if (Object.hasOwn(BY_STATUS, status)) return { text: BY_STATUS[status](error), signIn };
  if (error?.message) return { text: error.message, signIn };
  return { text: `Something went wrong${status ? ` (status ${status})` : ""}. Try again.`, signIn };
}
