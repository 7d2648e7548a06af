// Drives a Switchyard server with the official OpenAI Node SDK, as agents
// do, and prints what it got as JSON for internal/up's TestNodeSDK to check.
// Usage: node sdk.mjs BASE_URL MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const question = { role: "user", content: "How do I open a file?" };
const out = {};

// A refused request: its status, param and message, or what went wrong.
async function refusal(params) {
  try {
    await client.chat.completions.create({ model, max_tokens: 8, messages: [question], ...params });
    return { status: 200 };
  } catch (e) {
    if (!(e instanceof OpenAI.APIError)) throw e;
    return { status: e.status, param: e.param ?? null, message: e.message, badRequest: e instanceof OpenAI.BadRequestError };
  }
}

out.models = (await client.models.list()).data.map((m) => m.id);
const one = await client.models.retrieve(model);
out.model = { id: one.id, object: one.object };

const greedy = { model, max_tokens: 16, temperature: 0 };
const dev = await client.chat.completions.create({ ...greedy, messages: [{ role: "developer", content: "Answer with Python." }, question] });
out.developer = dev.choices[0].message.content;

const three = await client.chat.completions.create({ ...greedy, n: 3, messages: [question] });
out.n3 = { contents: three.choices.map((c) => c.message.content), indexes: three.choices.map((c) => c.index), usage: three.usage };

// Streamed, n = 3, sampled: the SDK's stream helper reassembles every choice.
const sampled = { model, max_tokens: 24, temperature: 1, seed: 11, n: 3, messages: [question] };
const whole = await client.chat.completions.create(sampled);
const final = await client.chat.completions.stream(sampled).finalChatCompletion();
out.sampled = { whole: whole.choices.map((c) => c.message.content), streamed: final.choices.map((c) => c.message.content) };

// A tool call and its result in the conversation (text parts, null content).
const roundTrip = await client.chat.completions.create({
  ...greedy,
  messages: [
    { role: "user", content: [{ type: "text", text: "Weather in Paris?" }] },
    { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
    { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 18}' },
  ],
  parallel_tool_calls: true,
  store: false,
  metadata: { run: "test" },
  user: "agent-1",
  service_tier: "auto",
});
out.roundTrip = { finish: roundTrip.choices[0].finish_reason, promptTokens: roundTrip.usage.prompt_tokens };

// A forced call, whole and streamed: the stream helper reassembles the
// tool-call deltas (ID, name, then argument fragments). The schema's keys
// are in the order the Go SDK sends them, which the template shows, so the
// prompt is the same.
const forced = {
  model, max_tokens: 64, temperature: 0.3, seed: 5, messages: [{ role: "user", content: "Weather in Paris?" }],
  tools: [{ type: "function", function: { name: "get_weather", parameters: { properties: { city: { type: "string" } }, required: ["city"], type: "object" } } }],
  tool_choice: "required",
};
const call = (c) => ({ finish: c.finish_reason, calls: (c.message.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })) });
const forcedWhole = await client.chat.completions.create(forced);
const forcedStreamed = await client.chat.completions.stream(forced).finalChatCompletion();
out.forced = { whole: call(forcedWhole.choices[0]), streamed: call(forcedStreamed.choices[0]) };

out.refused = {
  response_format: await refusal({ response_format: { type: "json_schema", json_schema: { name: "person", schema: [1] } } }),
  audio: await refusal({ modalities: ["text", "audio"], audio: { voice: "alloy", format: "wav" } }),
  prediction: await refusal({ prediction: { type: "content", content: "x" } }),
  web_search_options: await refusal({ web_search_options: {} }),
  image: await refusal({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] }] }),
  max_tokens: await refusal({ max_tokens: 300 }),
};

process.stdout.write(JSON.stringify(out));
