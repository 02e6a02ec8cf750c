// Amarsia's streaming example, as its document writes it: fetch the runner's /stream and
// read the plain-text body chunk by chunk. It prints what it read as JSON for the Go test.
const base = process.env.SWITCHBOARD_URL;
const response = await fetch(`${base}/v1/runner/${process.env.DEPLOYMENT_ID}/stream`, {
  method: 'POST',
  headers: {
    'Content-Type': 'application/json',
    'x-api-key': process.env.SWITCHBOARD_KEY,
  },
  body: JSON.stringify({
    content: [{ type: 'text', text: process.env.PROMPT }],
  }),
});

const reader = response.body.getReader();
const decoder = new TextDecoder();
const chunks = [];
while (true) {
  const { done, value } = await reader.read();
  if (done) break;
  const chunk = decoder.decode(value, { stream: true });
  if (chunk) chunks.push(chunk);
}
process.stdout.write(JSON.stringify({
  status: response.status,
  content_type: response.headers.get('content-type'),
  chunks,
}));
