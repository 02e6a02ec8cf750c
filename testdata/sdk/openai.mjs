// The official OpenAI client as a judge of Switchboard's /v1/chat/completions: it runs a
// plain turn, a tool-call turn and a tool-result turn, each with chat.completions.create and
// with the strict stream accumulator chat.completions.stream(...).finalChatCompletion(), and
// prints the final objects as one JSON object keyed "<turn>/<create|stream>". With
// SWITCHBOARD_ERROR_MODEL set it also asks for that model and prints the error it raises; with
// SWITCHBOARD_BROKEN_MODEL set, it streams from that model and prints the error it raises.
//
//   SWITCHBOARD_BASE_URL=http://127.0.0.1:8080/v1 SWITCHBOARD_API_KEY=as_test_… \
//   SWITCHBOARD_MODEL=openai/gpt-4o-mini node openai.mjs
import OpenAI from "openai";

const env = process.env;
for (const name of ["SWITCHBOARD_BASE_URL", "SWITCHBOARD_API_KEY", "SWITCHBOARD_MODEL"]) {
  if (!env[name]) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
}
const model = env.SWITCHBOARD_MODEL;
const client = new OpenAI({ baseURL: env.SWITCHBOARD_BASE_URL, apiKey: env.SWITCHBOARD_API_KEY, maxRetries: 0, timeout: 20_000 });

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The weather in a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];
const system = { role: "system", content: "Be brief." };
const question = { role: "user", content: "What is the weather in Paris and Lyon?" };
const turns = {
  text: { messages: [system, { role: "user", content: "Hello?" }] },
  tool_call: { messages: [system, question], tools, tool_choice: "auto" },
  tool_result: {
    messages: [
      system,
      question,
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
          { id: "call_w2", type: "function", function: { name: "get_weather", arguments: '{"city":"Lyon"}' } },
        ],
      },
      { role: "tool", tool_call_id: "call_w1", content: "18C and sunny" },
      { role: "tool", tool_call_id: "call_w2", content: "12C and rain" },
    ],
    tools,
  },
};

function describe(err) {
  return { name: err?.constructor?.name, status: err?.status ?? null, error: err?.error ?? null, message: String(err?.message ?? err) };
}

const out = {};
for (const [name, turn] of Object.entries(turns)) {
  const params = { model, max_tokens: 256, temperature: 0.5, ...turn };
  out[`${name}/create`] = await client.chat.completions.create(params);
  const stream = client.chat.completions.stream({ ...params, stream: true, stream_options: { include_usage: true } });
  let chunks = 0;
  stream.on("chunk", () => chunks++);
  out[`${name}/stream`] = await stream.finalChatCompletion();
  out[`${name}/stream`].chunks_seen = chunks;
}
if (env.SWITCHBOARD_ERROR_MODEL) {
  const params = { model: env.SWITCHBOARD_ERROR_MODEL, max_tokens: 16, ...turns.text };
  try {
    await client.chat.completions.create(params);
    out["error/create"] = { unexpected: "no error" };
  } catch (err) {
    out["error/create"] = describe(err);
  }
  try {
    await client.chat.completions.stream({ ...params, stream: true }).finalChatCompletion();
    out["error/stream"] = { unexpected: "no error" };
  } catch (err) {
    out["error/stream"] = describe(err);
  }
}
if (env.SWITCHBOARD_BROKEN_MODEL) {
  // A stream the upstream breaks after it started: the client must raise, not hang.
  try {
    await client.chat.completions.stream({ model: env.SWITCHBOARD_BROKEN_MODEL, max_tokens: 16, ...turns.text, stream: true }).finalChatCompletion();
    out["broken/stream"] = { unexpected: "no error" };
  } catch (err) {
    out["broken/stream"] = describe(err);
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
