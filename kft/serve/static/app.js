// kft serve: classify images in the browser with the exported .tflite (MediaPipe Tasks Vision, wasm).
// The ImageClassifier reads the model's metadata (labels, normalisation) and resizes each image or
// camera frame to the model's declared input itself, exactly as the Android demo does.
import { FilesetResolver, ImageClassifier } from "/static/vendor/mediapipe/vision_bundle.mjs";

const $ = (id) => document.getElementById(id);
let classifier = null;
let mode = "IMAGE";

function setStatus(text, state = "ready") {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

function bars(categories) {
  const box = document.createElement("div");
  for (const c of categories) {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.label = c.categoryName;
    row.dataset.score = c.score.toFixed(6);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = c.categoryName;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${(100 * c.score).toFixed(1)}%`;
    track.append(fill);
    const pct = document.createElement("span");
    pct.textContent = `${(100 * c.score).toFixed(1)}%`;
    row.append(label, track, pct);
    box.append(row);
  }
  return box;
}

async function setMode(next) {
  if (mode !== next) {
    await classifier.setOptions({ runningMode: next });
    mode = next;
  }
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`${file.name}: not an image this browser can decode`));
    img.src = URL.createObjectURL(file);
  });
}

async function classifyFiles(files) {
  await setMode("IMAGE");
  for (const file of files) {
    const card = document.createElement("div");
    card.className = "card result";
    card.dataset.image = file.name;
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = file.name;
    try {
      const img = await loadImage(file);
      const t0 = performance.now();
      const result = classifier.classify(img);
      const ms = performance.now() - t0;
      const categories = result.classifications[0].categories.slice(0, 3);
      card.dataset.top = categories.length ? categories[0].categoryName : "";
      card.dataset.ms = ms.toFixed(2);
      const time = document.createElement("div");
      time.className = "ms";
      time.textContent = `${ms.toFixed(1)} ms in this browser`;
      card.append(img, name, bars(categories), time);
    } catch (err) {
      card.dataset.error = String(err.message || err);
      const msg = document.createElement("div");
      msg.className = "error";
      msg.textContent = card.dataset.error;
      card.append(name, msg);
    }
    $("results").prepend(card);
  }
  setStatus(`classified ${document.querySelectorAll(".result").length} image(s)`);
}

async function startCamera() {
  const video = $("video");
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    setStatus(`webcam unavailable: ${err.message || err}`, "error");
    return;
  }
  $("live").hidden = false;
  await setMode("VIDEO");
  const loop = () => {
    if (mode === "VIDEO" && video.readyState >= 2) {
      const t0 = performance.now();
      const result = classifier.classifyForVideo(video, t0);
      const ms = performance.now() - t0;
      const out = $("live-result");
      out.replaceChildren(bars(result.classifications[0].categories.slice(0, 3)));
      const time = document.createElement("div");
      time.className = "ms";
      time.textContent = `${ms.toFixed(1)} ms per frame`;
      out.append(time);
    }
    if (mode === "VIDEO") requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}

async function main() {
  const info = await (await fetch("/model")).json();
  const acc = info.accuracy == null ? "" : `, accuracy ${(100 * info.accuracy).toFixed(2)}% on ${info.scored_on}`;
  $("model").textContent = `${info.file} (${info.variant}, ${(info.size_bytes / 1e6).toFixed(2)} MB), ` +
    `input ${info.input_size[0]}x${info.input_size[1]} ${info.input_dtype}${acc}; ` +
    `labels: ${info.labels.join(", ")}`;
  const fileset = await FilesetResolver.forVisionTasks("/static/vendor/mediapipe");
  classifier = await ImageClassifier.createFromOptions(fileset, {
    baseOptions: { modelAssetPath: "/model.tflite", delegate: "CPU" },
    maxResults: 3,
    runningMode: "IMAGE",
  });
  $("files").addEventListener("change", (e) => classifyFiles([...e.target.files]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    classifyFiles([...e.dataTransfer.files].filter((f) => f.type.startsWith("image/")));
  });
  const camera = $("camera");
  camera.disabled = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  camera.addEventListener("click", startCamera);
  setStatus("ready: drop or choose images");
}

main().catch((err) => setStatus(`error: ${err.message || err}`, "error"));
