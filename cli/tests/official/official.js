// The official Node verifiers and signer, driven by cli/tests/interop.rs.
//
// Usage: node official.js INTEROP_DIR < request.json
// request: {"verify": [{secret, id, timestamp, signature, body}], "sign": [{secret, id, timestamp, body}]}
// answer:  {"verified": [{"replicate": bool, "replicate_headers": bool, "standardwebhooks": bool}],
//           "signed": ["v1,..."]}
// A verifier that throws for a reason other than a bad signature answers "error: <message>".
"use strict";

const fs = require("fs");
const path = require("path");

const dir = process.argv[2];
const { validateWebhook } = require(path.join(dir, "node_modules", "replicate"));
const { Webhook, WebhookVerificationError } = require(path.join(dir, "node_modules", "standardwebhooks"));

async function replicateFields(c) {
  // The documented object form: id, timestamp, signature, body and secret.
  const { id, timestamp, signature, body, secret } = c;
  return validateWebhook({ id, timestamp, signature, body, secret });
}

async function replicateHeaders(c) {
  // The request form: plain headers, as an HTTP framework hands them over.
  const headers = {
    "webhook-id": c.id,
    "webhook-timestamp": c.timestamp,
    "webhook-signature": c.signature,
  };
  return validateWebhook({ headers, body: c.body }, c.secret);
}

function standardWebhooks(c) {
  const headers = {
    "webhook-id": c.id,
    "webhook-timestamp": c.timestamp,
    "webhook-signature": c.signature,
  };
  try {
    new Webhook(c.secret).verify(c.body, headers, { jsonParse: false });
    return true;
  } catch (e) {
    if (e instanceof WebhookVerificationError && e.message === "No matching signature found") {
      return false;
    }
    return `error: ${e.message}`;
  }
}

async function settle(promise) {
  try {
    return await promise;
  } catch (e) {
    return `error: ${e.message}`;
  }
}

async function main() {
  const request = JSON.parse(fs.readFileSync(0, "utf8"));
  const verified = [];
  for (const c of request.verify || []) {
    verified.push({
      replicate: await settle(replicateFields(c)),
      replicate_headers: await settle(replicateHeaders(c)),
      standardwebhooks: standardWebhooks(c),
    });
  }
  const signed = (request.sign || []).map((c) =>
    new Webhook(c.secret).sign(c.id, new Date(c.timestamp * 1000), c.body),
  );
  process.stdout.write(JSON.stringify({ verified, signed }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
