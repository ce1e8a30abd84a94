// OpenAI's Agents SDK for JavaScript (@openai/agents), unchanged, against the OpenAI-compatible door.
// Usage: node openai_agents_js.mjs <base URL, e.g. http://127.0.0.1:7071/api/v1> <model>
// Prints one JSON document of what the SDK returned; the test asserts on it.
const [baseURL, modelName] = process.argv.slice(2);

// docs: openai-agents-js
import { Agent, run, setDefaultOpenAIClient, setTracingDisabled, tool } from "@openai/agents";
import OpenAI from "openai";
import { z } from "zod";

setTracingDisabled(true);
const client = new OpenAI({ baseURL, apiKey: "unused" });
setDefaultOpenAIClient(client);

const getWeather = tool({
  name: "get_weather",
  description: "The weather in a city",
  parameters: z.object({ city: z.string() }),
  execute: async ({ city }) => `snow in ${city}`,
});

const agent = new Agent({
  name: "Assistant",
  instructions: "Agents SDK (JS) instructions: answer briefly.",
  model: modelName,
  tools: [getWeather],
});

// History kept by the server, chained by previousResponseId ...
const first = await run(agent, "agents-js one");
const second = await run(agent, "agents-js two", { previousResponseId: first.lastResponseId });
// ... or in a conversation.
const conversation = await client.conversations.create({});
const third = await run(agent, "agents-js three", { conversationId: conversation.id });
const fourth = await run(agent, "agents-js four", { conversationId: conversation.id });
// The model calls the tool; the SDK runs it and sends its output back.
const weather = await run(agent, '[[tool:get_weather {"city": "Oslo"}]] agents-js weather?');
// end docs

const sent = [];
for (const result of [second, fourth]) {
  const page = await client.responses.inputItems.list(result.lastResponseId, { order: "asc" });
  sent.push(page.data.map((item) => item.content[0].text));
}
const items = await client.conversations.items.list(conversation.id, { order: "asc" });
// A typed answer: outputType sends its schema as text.format.
const typedAgent = new Agent({
  name: "Forecaster",
  model: modelName,
  outputType: z.object({ city: z.string(), days: z.number().int() }),
});
const typed = await run(typedAgent, "typed-js forecast");
console.log(
  JSON.stringify({
    chain: [first.finalOutput, second.finalOutput],
    conversation: [third.finalOutput, fourth.finalOutput],
    sent,
    conversation_items: items.data.map((item) => item.type),
    tool: weather.finalOutput,
    tool_items: weather.newItems.map((item) => item.type),
    typed: typed.finalOutput,
  }),
);
