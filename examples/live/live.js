// Starts a prediction through the app's API, then shows what its live channel pushes.
// Every value from a delivery is set with textContent or as an attribute, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let source = null;

function show(data) {
  $("status").textContent = data.status;
  $("status").className = "status " + data.status;
  if (data.logs_reset) $("logs").textContent = "";
  if (data.logs) {
    $("logs").textContent += data.logs;
    $("logs").scrollTop = $("logs").scrollHeight;
  }
  renderOutput(data.output);
  if (data.error) {
    $("error").hidden = false;
    $("error").textContent = typeof data.error === "string" ? data.error : JSON.stringify(data.error);
  }
}

function isImageUrl(value) {
  return typeof value === "string" && /^https?:\/\/\S+\.(png|jpe?g|webp|gif)(\?\S*)?$/i.test(value);
}

function renderOutput(output) {
  const box = $("output");
  box.replaceChildren();
  if (output === null || output === undefined) return;
  const items = Array.isArray(output) ? output : [output];
  if (items.length > 0 && items.every(isImageUrl)) {
    for (const url of items) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = "output image";
      box.append(img);
    }
  } else if (items.every((x) => typeof x === "string")) {
    // Language models stream tokens as a list of strings.
    box.textContent = items.join("");
  } else {
    box.textContent = JSON.stringify(output, null, 2);
  }
}

function listen(url) {
  if (source) source.close();
  source = new EventSource(url);
  // "state" is the whole prediction (logs included), sent first and after a gap.
  source.addEventListener("state", (e) => {
    $("logs").textContent = "";
    show(JSON.parse(e.data));
  });
  for (const name of ["start", "output", "logs"]) {
    source.addEventListener(name, (e) => show(JSON.parse(e.data)));
  }
  source.addEventListener("completed", (e) => {
    show(JSON.parse(e.data));
    // The server ends the stream after the terminal event; do not reconnect.
    source.close();
  });
  source.addEventListener("lagged", () => {
    // Fell behind: reconnecting resumes from the last event id, or gets a fresh state.
    source.close();
    listen(url);
  });
}

$("create").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("problem").hidden = true;
  const model = $("model").value.trim();
  // hello-world takes `text`; most text-to-image and language models take `prompt`.
  const key = model === "replicate/hello-world" ? "text" : "prompt";
  $("run").disabled = true;
  try {
    const resp = await fetch("/api/predictions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, input: { [key]: $("prompt").value } }),
    });
    if (!resp.ok) throw new Error(await resp.text());
    const created = await resp.json();
    $("id").textContent = created.id;
    $("status").textContent = "created";
    $("status").className = "status";
    $("logs").textContent = "";
    $("output").replaceChildren();
    $("error").hidden = true;
    $("prediction").hidden = false;
    listen(created.events);
  } catch (err) {
    $("problem").textContent = String(err.message || err);
    $("problem").hidden = false;
  } finally {
    $("run").disabled = false;
  }
});
