// The Vercel AI SDK (`ai` with `@ai-sdk/openai`), unchanged, against the OpenAI-compatible door.
// Usage: node vercel_ai_sdk.mjs <base URL, e.g. http://127.0.0.1:7071/api/v1> <model>
// Prints one JSON document of what the SDK returned; the test asserts on it. Each part is caught
// on its own, so one that fails is reported with its error and the others still run.
const [baseURL, modelName] = process.argv.slice(2);

// docs: vercel-ai-sdk
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import { z } from "zod";

const openai = createOpenAI({ baseURL, apiKey: "unused" });
const model = openai.responses(modelName);
const system = "Vercel AI SDK system prompt: answer briefly.";

// History kept by the server: each turn continues the last response by its ID.
const first = await generateText({ model, system, prompt: "vercel one" });
const second = await generateText({
  model,
  system,
  prompt: "vercel two",
  providerOptions: { openai: { previousResponseId: first.providerMetadata.openai.responseId } },
});

// Streamed, the same way.
const streamed = streamText({
  model,
  system,
  prompt: "vercel three",
  providerOptions: { openai: { previousResponseId: second.providerMetadata.openai.responseId } },
});
let streamedText = "";
for await (const delta of streamed.textStream) streamedText += delta;

// Or in a conversation of the server's.
const client = new OpenAI({ baseURL, apiKey: "unused" }); // for the Conversations API
const conversation = await client.conversations.create({});
const inConversation = { openai: { conversation: conversation.id } };
const third = await generateText({ model, system, prompt: "vercel four", providerOptions: inConversation });
const fourth = await generateText({ model, system, prompt: "vercel five", providerOptions: inConversation });

// The model calls the tool; the SDK runs it and sends its output back.
const weather = await generateText({
  model,
  system,
  prompt: '[[tool:get_weather {"city": "Oslo"}]] vercel weather?',
  tools: {
    get_weather: tool({
      description: "The weather in a city",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => `snow in ${city}`,
    }),
  },
  stopWhen: stepCountIs(2),
});
// end docs
import { generateObject, Output } from "ai";

const result = {
  chain: [first.text, second.text],
  streamed: streamedText,
  conversation: [third.text, fourth.text],
  tool: weather.text,
  tool_steps: weather.steps.map((step) => step.toolCalls.map((call) => [call.toolName, call.input])),
  tool_results: weather.steps.flatMap((step) => step.toolResults.map((r) => r.output)),
};

const sent = await client.responses.inputItems.list(second.providerMetadata.openai.responseId, { order: "asc" });
result.sent = sent.data.map((item) => item.content[0].text);
const items = await client.conversations.items.list(conversation.id, { order: "asc" });
result.conversation_items = items.data.map((item) => [item.type, item.role]);

// The AI SDK's own multi-turn recipe: the caller keeps the messages and sends them all again.
// With `store` on (its default), the earlier answers go as `item_reference` items.
try {
  const messages = [{ role: "user", content: "history one" }];
  const one = await generateText({ model, system, messages });
  messages.push(...one.response.messages, { role: "user", content: "history two" });
  const two = await generateText({ model, system, messages });
  result.history = { texts: [one.text, two.text] };
} catch (error) {
  result.history = { error: { status: error.statusCode ?? null, body: error.responseBody ?? String(error) } };
}

// Typed answers: generateObject, and generateText with Output.object, send the schema as text.format.
const forecast = z.object({ city: z.string(), days: z.number().int() });
try {
  const object = await generateObject({ model, schema: forecast, prompt: "typed-ai object" });
  const output = await generateText({ model, output: Output.object({ schema: forecast }), prompt: "typed-ai output" });
  result.typed = [object.object, output.output];
} catch (error) {
  result.typed = { error: { status: error.statusCode ?? null, body: error.responseBody ?? String(error) } };
}

// A tool whose output is an image (toModelOutput content): the SDK sends it as the call's output parts.
const SCREENSHOT = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==";
try {
  const looked = await generateText({
    model,
    prompt: "[[tool:screenshot {}]] aisdk-image screenshot",
    tools: {
      screenshot: tool({
        description: "A screenshot of the page",
        inputSchema: z.object({}),
        execute: async () => SCREENSHOT,
        toModelOutput: ({ output }) => ({
          type: "content",
          value: [{ type: "file", mediaType: "image/png", data: { type: "data", data: output } }],
        }),
      }),
    },
    stopWhen: stepCountIs(2),
  });
  const lookedSent = await client.responses.inputItems.list(looked.providerMetadata.openai.responseId);
  result.screened = { text: looked.text, output: lookedSent.data[0].output, image: `data:image/png;base64,${SCREENSHOT}` };
} catch (error) {
  result.screened = { error: { status: error.statusCode ?? null, body: error.responseBody ?? String(error) } };
}

console.log(JSON.stringify(result));
