// The receiver Replicate's docs show, on Node's `http`: HMAC-SHA256 over
// `${id}.${timestamp}.${body}` with the base64-decoded `whsec_` secret, a constant-time compare
// against each `v1,` signature, a 5-minute timestamp window, then `JSON.parse` of the body.
//
//   REPLICATE_WEBHOOK_SECRET=whsec_… node bench/node/receiver.js 127.0.0.1:8083
"use strict";
const http = require("http");
const crypto = require("crypto");

const [host, port] = (process.argv[2] || "127.0.0.1:8083").split(":");
const secret = process.env.REPLICATE_WEBHOOK_SECRET || "";
const key = Buffer.from(secret.split("_")[1] || "", "base64");

function verify(req, body) {
  const id = req.headers["webhook-id"];
  const timestamp = req.headers["webhook-timestamp"];
  const signatures = req.headers["webhook-signature"];
  if (!id || !timestamp || !signatures) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const signedContent = `${id}.${timestamp}.${body}`;
  const expected = crypto.createHmac("sha256", key).update(signedContent).digest();
  return signatures.split(" ").some((entry) => {
    const [version, b64] = entry.split(",");
    if (version !== "v1" || !b64) return false;
    const given = Buffer.from(b64, "base64");
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

function answer(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (!verify(req, body)) return answer(res, 401, "invalid signature");
      let prediction;
      try {
        prediction = JSON.parse(body);
      } catch {
        return answer(res, 400, "malformed JSON");
      }
      if (typeof prediction.id !== "string") return answer(res, 400, "no id");
      answer(res, 200, "ok");
    });
  })
  .listen(Number(port), host);
