// Drives the OpenAI-compatible door with OpenAI's official JavaScript SDK, unchanged.
// Usage: node openai_sdk.mjs <base URL, e.g. http://127.0.0.1:7071/api/v1> <model>
// Prints one JSON document of what the SDK returned; the test asserts on it.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused-here", maxRetries: 0 });
const result = {};

// Conversations and their items, paged both ways.
const conversation = await client.conversations.create({
  items: [{ type: "message", role: "user", content: "My name is Ada." }],
  metadata: { from: "js" },
});
result.conversation = conversation;
await client.conversations.items.create(conversation.id, {
  items: [1, 2, 3, 4, 5].map((n) => ({ type: "message", role: "user", content: `note ${n}` })),
});
const ascending = [];
for await (const item of client.conversations.items.list(conversation.id, { order: "asc", limit: 2 })) {
  ascending.push(item.content[0].text);
}
const descending = [];
for await (const item of client.conversations.items.list(conversation.id, { limit: 4 })) {
  descending.push(item.content[0].text);
}
result.ascending = ascending;
result.descending = descending;

// A plain and a streamed response in the conversation.
const plain = await client.responses.create({ model, input: "What is my name?", conversation: conversation.id });
result.plain = { text: plain.output_text, status: plain.status, conversation: plain.conversation };
const streamed = await client.responses.create({ model, input: "Streamed", conversation: conversation.id, stream: true });
const events = [];
for await (const event of streamed) {
  events.push({ type: event.type, sequence: event.sequence_number, delta: event.delta ?? null });
}
result.events = events;

// The stream helper and its final response.
const helper = client.responses.stream({ model, input: "With the helper" });
const helperDeltas = [];
helper.on("response.output_text.delta", (event) => helperDeltas.push(event.delta));
const final = await helper.finalResponse();
result.helper = { deltas: helperDeltas.join(""), text: final.output_text, id: final.id };
result.retrieved = (await client.responses.retrieve(final.id)).output_text;

// A function tool round trip, by previous_response_id.
const tools = [
  {
    type: "function",
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
];
const call = await client.responses.create({ model, input: '[[tool:get_weather {"city":"Oslo"}]] weather?', tools });
const [functionCall] = call.output;
const toolAnswer = await client.responses.create({
  model,
  tools,
  previous_response_id: call.id,
  input: [{ type: "function_call_output", call_id: functionCall.call_id, output: "snow" }],
});
result.tool = { call: functionCall, answer: toolAnswer.output_text };

// A chain and a branch.
const one = await client.responses.create({ model, input: "js one" });
const two = await client.responses.create({ model, input: "js two", previous_response_id: one.id });
const branch = await client.responses.create({ model, input: "js branch", previous_response_id: one.id });
result.chain = { two: two.output_text, branch: branch.output_text };

// An image in a user message, sent to the model and read back from the response's input items.
const png = "data:image/png;base64," + Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]).toString("base64");
const seen = await client.responses.create({
  model,
  input: [
    {
      role: "user",
      content: [
        { type: "input_text", text: "js what is in it?" },
        { type: "input_image", image_url: png, detail: "low" },
      ],
    },
  ],
});
const inputs = await client.responses.inputItems.list(seen.id);
result.image = { sent: png, text: seen.output_text, parts: inputs.data[0].content };

// Errors, as the SDK's classes.
async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return { class: error.constructor.name, status: error.status, code: error.code ?? null, param: error.param ?? null };
  }
}
result.errors = {
  unsupported: await failure(client.responses.create({ model, input: "hi", top_logprobs: 3 })),
  model: await failure(client.responses.create({ model: "no-such-model", input: "hi" })),
  missing: await failure(client.conversations.retrieve("conv_nobody")),
  limited: await failure(client.responses.create({ model, input: "[[429]] busy" })),
  upstream: await failure(client.responses.create({ model, input: "[[503]] down" })),
};

process.stdout.write(JSON.stringify(result));
