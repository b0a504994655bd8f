// The labelling page: one image at a time, keyboard first. Labels are saved by POST /api/label at once.
"use strict";

const state = { items: [], index: 0, undo: [], labelled: 0, total: 0 };
const $ = (id) => document.getElementById(id);

function show(message, error = false) {
  $("status").textContent = message;
  $("status").className = error ? "error" : "";
}

function render() {
  $("progress").textContent = `${state.labelled} of ${state.total} labelled`;
  const item = state.items[state.index];
  if (!item) {
    document.body.classList.add("done");
    $("progress").textContent += " (end of the list: Ctrl+Z to go back)";
    return;
  }
  document.body.classList.remove("done");
  $("captcha").src = "/image?name=" + encodeURIComponent(item.name);
  $("captcha").dataset.name = item.name;
  const shown = item.label ?? item.guess;
  $("meta").textContent = `${item.name}: model reads "${item.guess}" (confidence ${item.confidence.toFixed(2)})` +
    (item.label ? `, labelled "${item.label}"` : "");
  $("answer").value = shown;
  $("answer").focus();
  $("answer").select();
}

function nextUnlabelled(from) {
  for (let i = from; i < state.items.length; i++) if (!state.items[i].label) return i;
  return state.items.length;
}

async function post(name, label) {
  const response = await fetch("/api/label", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name, label }),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  state.labelled = data.labelled;
  state.total = data.total;
}

async function save() {
  const item = state.items[state.index];
  if (!item) return;
  const label = $("answer").value.trim();
  try {
    await post(item.name, label);
  } catch (error) {
    show(`Not saved: ${error.message}`, true);
    return;
  }
  state.undo.push({ index: state.index, previous: item.label ?? null });
  item.label = label;
  show(`Saved ${item.name} as "${label}".`);
  state.index = nextUnlabelled(state.index + 1);
  render();
}

function skip() {
  if (state.index < state.items.length) state.index += 1;
  show("Skipped.");
  render();
}

async function undo() {
  const last = state.undo.pop();
  if (!last) { show("Nothing to undo."); return; }
  const item = state.items[last.index];
  try {
    await post(item.name, last.previous);
  } catch (error) {
    state.undo.push(last);
    show(`Undo failed: ${error.message}`, true);
    return;
  }
  item.label = last.previous;
  state.index = last.index;
  show(`Took back the label of ${item.name}.`);
  render();
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") { event.preventDefault(); skip(); }
  else if (event.key.toLowerCase() === "z" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); undo(); }
});
$("form").addEventListener("submit", (event) => { event.preventDefault(); save(); });
$("skip").addEventListener("click", skip);
$("undo").addEventListener("click", undo);

fetch("/api/items").then((response) => response.json()).then((data) => {
  state.items = data.items;
  state.labelled = data.labelled;
  state.total = data.total;
  state.index = nextUnlabelled(0);
  render();
}).catch((error) => show(`Could not load the images: ${error.message}`, true));
