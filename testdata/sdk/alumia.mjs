// The Vercel AI SDK (`ai`, pinned in package.json) as a judge of Switchboard's Alumia
// surface. It makes one HTTP request and prints one JSON object:
//
//   - a UI message stream (POST /api/v1/chat): read as useChat's DefaultChatTransport reads it,
//     parseJsonEventStream with uiMessageChunkSchema (whose strict objects refuse a chunk with
//     an unknown field: the judge then fails), and readUIMessageStream building the UIMessage a
//     client would show. Prints {status, headers, chunks (types in order), errors (errorText
//     of error chunks), done (whether data: [DONE] ended the body), message (the final
//     UIMessage)}.
//   - with SWITCHBOARD_VALIDATE set to a JSON path such as "messages", the answer is JSON and
//     the array at that key is checked with validateUIMessages (history in UIMessage shape).
//     Prints {status, headers, body, valid}.
//   - any other status than 200 prints {status, headers, body}.
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080/api/v1/chat \
//   SWITCHBOARD_HEADERS='{"Authorization":"Bearer alm_test_…","X-Alumia-Org":"acme"}' \
//   SWITCHBOARD_BODY='{"messages":[{"role":"user","content":"Hello"}]}' node alumia.mjs
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema, validateUIMessages } from "ai";

const env = process.env;
if (!env.SWITCHBOARD_URL) {
  console.error("SWITCHBOARD_URL is not set");
  process.exit(2);
}
const headers = JSON.parse(env.SWITCHBOARD_HEADERS || "{}");
const init = { method: env.SWITCHBOARD_METHOD || (env.SWITCHBOARD_BODY ? "POST" : "GET"), headers: { ...headers } };
if (env.SWITCHBOARD_BODY) {
  init.body = env.SWITCHBOARD_BODY;
  init.headers["Content-Type"] = "application/json";
}

const res = await fetch(env.SWITCHBOARD_URL, { ...init, signal: AbortSignal.timeout(30_000) });
const seen = {};
for (const name of ["content-type", "x-vercel-ai-ui-message-stream", "x-session-id", "retry-after", "cache-control"]) {
  if (res.headers.has(name)) seen[name] = res.headers.get(name);
}
const out = { status: res.status, headers: seen };

if (res.status !== 200 || env.SWITCHBOARD_VALIDATE) {
  const text = await res.text();
  try {
    out.body = JSON.parse(text);
  } catch {
    out.body = text;
  }
  if (res.status === 200 && env.SWITCHBOARD_VALIDATE) {
    // Throws (and the judge fails) when a message is not a valid UIMessage.
    await validateUIMessages({ messages: out.body[env.SWITCHBOARD_VALIDATE] });
    out.valid = true;
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}

// One copy of the body is parsed as the SDK parses it, the other kept raw to see how it ends.
const [forSDK, forRaw] = res.body.tee();
const rawText = new Response(forRaw).text();

out.chunks = [];
out.errors = [];
const chunks = parseJsonEventStream({ stream: forSDK, schema: uiMessageChunkSchema }).pipeThrough(
  new TransformStream({
    transform(chunk, controller) {
      if (!chunk.success) {
        // As DefaultChatTransport does: a chunk the schema refuses ends the stream in error.
        throw chunk.error;
      }
      out.chunks.push(chunk.value.type);
      controller.enqueue(chunk.value);
    },
  }),
);
let message = null;
for await (const m of readUIMessageStream({
  stream: chunks,
  onError: (err) => out.errors.push(String(err?.message ?? err)),
  terminateOnError: false,
})) {
  message = m;
}
// readUIMessageStream reports a chunk the schema refused through onError; a judge fails.
const refused = out.errors.filter((e) => /Type validation failed|AI_TypeValidationError|Invalid JSON/i.test(e));
if (refused.length > 0) {
  console.error("the stream holds chunks the AI SDK refuses:\n" + refused.join("\n"));
  process.exit(1);
}
const raw = await rawText;
out.done = raw.endsWith("data: [DONE]\n\n");
out.message = message;
process.stdout.write(JSON.stringify(out) + "\n");
