// The official Anthropic client as a judge of Switchboard's /v1/messages: it runs a plain
// turn, a tool-call turn and a tool-result turn, each with messages.create and with the
// strict stream accumulator messages.stream(...).finalMessage(), and prints the final
// objects as one JSON object keyed "<turn>/<create|stream>". With SWITCHBOARD_ERROR_MODEL
// set it also asks for that model and prints the error it raises; with
// SWITCHBOARD_BROKEN_MODEL set, it streams from that model and prints the error it raises.
//
//   SWITCHBOARD_BASE_URL=http://127.0.0.1:8080 SWITCHBOARD_API_KEY=as_test_… \
//   SWITCHBOARD_MODEL=anthropic/claude-haiku-4-5 node anthropic.mjs
import Anthropic from "@anthropic-ai/sdk";

const env = process.env;
for (const name of ["SWITCHBOARD_BASE_URL", "SWITCHBOARD_API_KEY", "SWITCHBOARD_MODEL"]) {
  if (!env[name]) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
}
const model = env.SWITCHBOARD_MODEL;
const client = new Anthropic({ baseURL: env.SWITCHBOARD_BASE_URL, apiKey: env.SWITCHBOARD_API_KEY, maxRetries: 0, timeout: 20_000 });

const tools = [
  {
    name: "get_weather",
    description: "The weather in a city",
    input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
];
const question = { role: "user", content: "What is the weather in Paris and Lyon?" };
const turns = {
  text: { messages: [{ role: "user", content: "Hello?" }] },
  tool_call: { messages: [question], tools, tool_choice: { type: "auto" } },
  tool_result: {
    messages: [
      question,
      {
        role: "assistant",
        content: [
          { type: "tool_use", id: "call_w1", name: "get_weather", input: { city: "Paris" } },
          { type: "tool_use", id: "call_w2", name: "get_weather", input: { city: "Lyon" } },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "call_w1", content: "18C and sunny" },
          { type: "tool_result", tool_use_id: "call_w2", content: [{ type: "text", text: "12C and rain" }] },
        ],
      },
    ],
    tools,
  },
};

function describe(err) {
  return { name: err?.constructor?.name, status: err?.status ?? null, error: err?.error ?? null, message: String(err?.message ?? err) };
}

const out = {};
for (const [name, turn] of Object.entries(turns)) {
  const params = { model, max_tokens: 256, temperature: 0.5, system: "Be brief.", ...turn };
  out[`${name}/create`] = await client.messages.create(params);
  const stream = client.messages.stream(params);
  const events = [];
  stream.on("streamEvent", (ev) => events.push(ev.type));
  out[`${name}/stream`] = await stream.finalMessage();
  out[`${name}/stream`].events_seen = events;
}
if (env.SWITCHBOARD_ERROR_MODEL) {
  const params = { model: env.SWITCHBOARD_ERROR_MODEL, max_tokens: 16, ...turns.text };
  try {
    await client.messages.create(params);
    out["error/create"] = { unexpected: "no error" };
  } catch (err) {
    out["error/create"] = describe(err);
  }
  try {
    await client.messages.stream(params).finalMessage();
    out["error/stream"] = { unexpected: "no error" };
  } catch (err) {
    out["error/stream"] = describe(err);
  }
}
if (env.SWITCHBOARD_BROKEN_MODEL) {
  // A stream the upstream breaks after it started: the client must raise, not hang.
  try {
    await client.messages.stream({ model: env.SWITCHBOARD_BROKEN_MODEL, max_tokens: 16, ...turns.text }).finalMessage();
    out["broken/stream"] = { unexpected: "no error" };
  } catch (err) {
    out["broken/stream"] = describe(err);
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
