//===- ExplainPage.cpp - the HTML page of `mlxc explain` --------*- C++ -*-===//
//
// The data goes into the page as one JavaScript literal (NaN and ±Infinity
// are JavaScript values; '<' is escaped so no text ends the script), the
// page's script renders it. The URL's hash selects a state
// (`#step=N&rate=K&t=T`: N cells revealed, run K, training step T), so a
// headless browser can check any frame.
//
//===----------------------------------------------------------------------===//
#include "tools/mlxc/ExplainPage.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>

using namespace mlx;

namespace {

/// The most rows and columns of a tensor's grid on the page.
constexpr int64_t kGridRows = 12, kGridCols = 12;

std::string jsString(llvm::StringRef s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '<':
      out += "\\u003c";
      break;
    case '>':
      out += "\\u003e";
      break;
    case '&':
      out += "\\u0026";
      break;
    default:
      out += c;
    }
  }
  return out + "\"";
}

std::string jsNumber(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "Infinity" : "-Infinity";
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%.9g", v);
  return text;
}

std::string jsNumbers(const std::vector<double> &values) {
  std::string out = "[";
  for (auto [k, v] : llvm::enumerate(values))
    out += (k ? "," : "") + jsNumber(v);
  return out + "]";
}

/// A tensor as {name, equation, line, shape, grid, truncated}: its
/// leading dims flattened into the grid's rows, at most kGridRows ×
/// kGridCols of them.
std::string jsValue(const ExplainData::Value &v) {
  const rt::Tensor &t = v.value;
  std::vector<int64_t> shape = t.shape();
  int64_t cols = shape.empty() ? 1 : shape.back();
  int64_t rows = cols == 0 ? 0 : t.numElements() / std::max<int64_t>(cols, 1);
  std::string grid = "[";
  for (int64_t r = 0; r < std::min(rows, kGridRows); ++r) {
    std::vector<double> row;
    for (int64_t c = 0; c < std::min(cols, kGridCols); ++c)
      row.push_back(t.getDouble(r * cols + c));
    grid += (r ? "," : "") + jsNumbers(row);
  }
  grid += "]";
  std::string dims;
  for (auto [k, d] : llvm::enumerate(shape))
    dims += (k ? "," : "") + std::to_string(d);
  bool truncated = rows > kGridRows || cols > kGridCols;
  return "{name:" + jsString(v.name) + ",equation:" + jsString(v.equation) +
         ",line:" + std::to_string(v.line) + ",shape:[" + dims +
         "],grid:" + grid + ",truncated:" + (truncated ? "true" : "false") +
         "}";
}

std::string jsValues(const std::vector<ExplainData::Value> &values) {
  std::string out = "[";
  for (auto [k, v] : llvm::enumerate(values))
    out += (k ? ",\n" : "") + jsValue(v);
  return out + "]";
}

const char *const kStyle = R"css(
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px; color: #1d232b;
       background: #fbfbfa; }
h1 { font-size: 22px; margin: 0 0 4px; }
h1 small { color: #6a737d; font-weight: normal; font-size: 14px; }
h2 { font-size: 17px; margin: 26px 0 8px; }
.controls { margin: 10px 0; display: flex; gap: 8px; align-items: center;
            flex-wrap: wrap; }
button { font: inherit; padding: 3px 12px; border: 1px solid #9aa4ae;
         border-radius: 5px; background: #fff; cursor: pointer; }
#current, #train-status { font-family: ui-monospace, monospace;
            background: #fff; border: 1px solid #d7dbe0; border-radius: 6px;
            padding: 8px 12px; min-height: 1.4em; white-space: pre-wrap; }
.card { background: #fff; border: 1px solid #d7dbe0; border-radius: 8px;
        padding: 10px 14px; margin: 12px 0; display: inline-block;
        vertical-align: top; margin-right: 12px; }
.eq { font-family: ui-monospace, monospace; margin-bottom: 8px; }
.eq .ln { color: #8a939c; margin-right: 8px; }
.badge { font-size: 12px; background: #eef3fb; color: #2458a6;
         border-radius: 4px; padding: 1px 6px; margin-left: 8px; }
table.grid { border-collapse: collapse; font-family: ui-monospace, monospace; }
table.grid td { border: 1px solid #dfe3e8; min-width: 54px; height: 26px;
                text-align: center; padding: 0 6px; color: #b7bec6; }
table.grid td.shown { color: #1d232b; background: #f3f8f0; }
table.grid td.now { background: #ffe9a8; color: #000; outline: 2px solid
                    #e0a800; }
table.grid td.now.acc { background: #cfe3ff; outline-color: #2458a6; }
.more { color: #8a939c; font-size: 12px; }
canvas { background: #fff; border: 1px solid #d7dbe0; border-radius: 8px;
         margin: 8px 12px 0 0; }
.verdict { font-weight: 600; }
)css";

const char *const kScript = R"js(
"use strict";
const D = DATA;
function fmt(v, digits) {
  if (v === Infinity) return "\u221e";
  if (v === -Infinity) return "\u2212\u221e";
  if (Number.isNaN(v)) return "NaN";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function hashState() {
  const s = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    const [k, v] = part.split("=");
    if (k) s[k] = parseInt(v, 10);
  }
  return s;
}
// The subscripts of row r, column c of a value's grid.
function subscripts(v, r, c) {
  const shape = v.shape;
  if (shape.length === 0) return "";
  if (shape.length === 1) return "[" + c + "]";
  const lead = [];
  let rest = r;
  for (let d = shape.length - 2; d >= 0; --d) {
    lead.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return "[" + lead.concat([c]).join(", ") + "]";
}
const reduces = (eq) => /\b(sum|prod|max|min|argmax|argmin)\[/.test(eq);

// Equations, cell by cell.
const cells = [];
function card(v, parent, animated) {
  const box = el("div", {class: "card"});
  const eq = el("div", {class: "eq"});
  if (v.line) eq.appendChild(el("span", {class: "ln"}, v.line + " |"));
  eq.appendChild(document.createTextNode(v.equation || v.name));
  if (animated && reduces(v.equation))
    eq.appendChild(el("span", {class: "badge"}, "reduction: each cell accumulates"));
  box.appendChild(eq);
  const shape = v.shape.length ? "[" + v.shape.join(", ") + "]" : "";
  box.appendChild(el("div", {class: "more"}, v.name + ": " + shape));
  const table = el("table", {class: "grid"});
  v.grid.forEach((row, r) => {
    const tr = el("tr");
    row.forEach((x, c) => {
      const td = el("td", {}, animated ? "\u00b7" : fmt(x, 3));
      if (!animated) td.className = "shown";
      else cells.push({v, r, c, x, td, acc: reduces(v.equation)});
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  box.appendChild(table);
  if (v.truncated) box.appendChild(el("div", {class: "more"}, "(first rows and columns)"));
  parent.appendChild(box);
}
const eqs = document.getElementById("equations");
D.statements.forEach((v) => card(v, eqs, true));
const outs = document.getElementById("results");
D.results.forEach((v) => card(v, outs, false));
D.gradients.forEach((v) => card(v, outs, false));
if (!D.gradients.length && !D.results.length) outs.remove();

let step = 0, timer = null;
const scrub = document.getElementById("scrub");
scrub.max = cells.length;
function show(n) {
  step = Math.max(0, Math.min(cells.length, n));
  cells.forEach((cell, k) => {
    cell.td.className = k < step ? "shown" + (k === step - 1 ? " now" + (cell.acc ? " acc" : "") : "") : "";
    cell.td.textContent = k < step ? fmt(cell.x, 3) : "\u00b7";
  });
  scrub.value = step;
  document.getElementById("stepno").textContent = step + " / " + cells.length;
  const cur = document.getElementById("current");
  if (step === 0) { cur.textContent = "press play or step: the cells fill in the order they are computed"; return; }
  const cell = cells[step - 1];
  cur.textContent = cell.v.name + subscripts(cell.v, cell.r, cell.c) + " = " + fmt(cell.x, 6) +
      (cell.v.line ? "    (line " + cell.v.line + ": " + cell.v.equation + ")" : "");
}
function play(button, advance, atEnd) {
  return () => {
    if (timer) { clearInterval(timer); timer = null; button.textContent = "play"; return; }
    if (atEnd()) advance(-Infinity);
    button.textContent = "pause";
    timer = setInterval(() => {
      advance(1);
      if (atEnd()) { clearInterval(timer); timer = null; button.textContent = "play"; }
    }, 450);
  };
}
const playButton = document.getElementById("play");
playButton.onclick = play(playButton, (d) => show(d === -Infinity ? 0 : step + d), () => step >= cells.length);
document.getElementById("step").onclick = () => show(step + 1);
document.getElementById("back").onclick = () => show(step - 1);
document.getElementById("reset").onclick = () => show(0);
scrub.oninput = () => show(parseInt(scrub.value, 10));

// A training loop: the loss curve and the path over the loss surface.
const T = document.getElementById("training");
let run = 0, t = 0;
function verdict(r) {
  const L = r.loss, n = L.length;
  if (!L.every(Number.isFinite) || L[n - 1] > L[0]) return "diverging";
  let flips = 0;
  for (let k = 2; k < r.path.length; ++k) {
    const a = r.path[k - 1][0] - r.path[k - 2][0], b = r.path[k][0] - r.path[k - 1][0];
    if (a * b < 0) ++flips;
  }
  return flips > (r.path.length - 2) / 2 ? "oscillating (converging)" : "converging";
}
function drawAxes(ctx, w, h) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#c9ced4";
  ctx.strokeRect(40, 10, w - 50, h - 40);
}
function drawLoss() {
  const c = document.getElementById("loss-curve"), ctx = c.getContext("2d");
  const r = D.runs[run], L = r.loss.map((x) => Number.isFinite(x) ? x : NaN);
  drawAxes(ctx, c.width, c.height);
  const finite = L.filter(Number.isFinite);
  const positive = finite.every((x) => x > 0);
  const f = positive ? (x) => Math.log10(x) : (x) => x;
  const ys = finite.map(f), lo = Math.min(...ys), hi = Math.max(...ys);
  const X = (k) => 40 + (c.width - 50) * k / Math.max(1, L.length - 1);
  const Y = (x) => 10 + (c.height - 40) * (1 - (f(x) - lo) / ((hi - lo) || 1));
  ctx.strokeStyle = "#2458a6"; ctx.lineWidth = 2; ctx.beginPath();
  L.forEach((x, k) => { if (Number.isFinite(x)) (k ? ctx.lineTo(X(k), Y(x)) : ctx.moveTo(X(k), Y(x))); });
  ctx.stroke();
  if (Number.isFinite(L[t])) { ctx.fillStyle = "#d0342c"; ctx.beginPath(); ctx.arc(X(t), Y(L[t]), 5, 0, 7); ctx.fill(); }
  ctx.fillStyle = "#1d232b"; ctx.font = "12px sans-serif";
  ctx.fillText(D.loss + (positive ? " (log scale)" : "") + " by step", 44, c.height - 12);
}
function drawSurface() {
  const c = document.getElementById("surface"), ctx = c.getContext("2d");
  const r = D.runs[run];
  drawAxes(ctx, c.width, c.height);
  const xs = D.surfaceX, x0 = xs[0], x1 = xs[xs.length - 1];
  const X = (x) => 40 + (c.width - 50) * (x - x0) / ((x1 - x0) || 1);
  const clampX = (x) => Math.max(40, Math.min(c.width - 10, X(x)));
  ctx.font = "12px sans-serif";
  if (!D.surfaceY.length) {
    const S = D.surface, lo = Math.min(...S), hi = Math.max(...S);
    const Y = (y) => 10 + (c.height - 40) * (1 - (y - lo) / ((hi - lo) || 1));
    const clampY = (y) => Math.max(10, Math.min(c.height - 30, Y(y)));
    ctx.strokeStyle = "#8a939c"; ctx.lineWidth = 2; ctx.beginPath();
    xs.forEach((x, k) => (k ? ctx.lineTo(X(x), Y(S[k])) : ctx.moveTo(X(x), Y(S[k]))));
    ctx.stroke();
    ctx.strokeStyle = "#d0342c"; ctx.lineWidth = 1; ctx.beginPath();
    for (let k = 0; k <= t; ++k) {
      const px = clampX(r.path[k][0]), py = clampY(r.loss[k]);
      k ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
    }
    ctx.stroke();
    ctx.fillStyle = "#d0342c"; ctx.beginPath();
    ctx.arc(clampX(r.path[t][0]), clampY(r.loss[t]), 7, 0, 7); ctx.fill();
    ctx.fillStyle = "#1d232b";
    ctx.fillText(D.loss + " over " + D.parameter + " (the bowl); the ball is " + D.parameter, 44, c.height - 12);
    return;
  }
  const ys = D.surfaceY, y0 = ys[0], y1 = ys[ys.length - 1];
  const Y = (y) => 10 + (c.height - 40) * (1 - (y - y0) / ((y1 - y0) || 1));
  const S = D.surface.map((v) => Math.log10(1e-12 + Math.max(0, v)));
  const lo = Math.min(...S), hi = Math.max(...S);
  const cw = (c.width - 50) / xs.length, ch = (c.height - 40) / ys.length;
  ys.forEach((y, j) => xs.forEach((x, i) => {
    const u = (S[j * xs.length + i] - lo) / ((hi - lo) || 1);
    ctx.fillStyle = "hsl(" + (220 - 200 * u) + ",70%," + (88 - 40 * u) + "%)";
    ctx.fillRect(40 + i * cw, 10 + (ys.length - 1 - j) * ch, cw + 1, ch + 1);
  }));
  const clampY = (y) => Math.max(10, Math.min(c.height - 30, Y(y)));
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath();
  for (let k = 0; k <= t; ++k) {
    const px = clampX(r.path[k][0]), py = clampY(r.path[k][1]);
    k ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
  }
  ctx.stroke();
  ctx.fillStyle = "#1d232b";
  ctx.fillText(D.loss + " over (" + D.parameter + "[0], " + D.parameter + "[1]); the path of the steps", 44, c.height - 12);
}
function showTraining(k, tt) {
  run = Math.max(0, Math.min(D.runs.length - 1, k));
  const r = D.runs[run];
  t = Math.max(0, Math.min(r.path.length - 1, tt));
  document.getElementById("rate").value = run;
  document.getElementById("tscrub").max = r.path.length - 1;
  document.getElementById("tscrub").value = t;
  document.getElementById("rate-label").textContent = D.rate + " = " + fmt(r.rate, 6);
  document.getElementById("train-status").textContent =
      "step " + t + ": " + D.parameter + " = [" + r.path[t].map((x) => fmt(x, 6)).join(", ") + "], " +
      D.loss + " = " + fmt(r.loss[t], 6) + "    " + D.rate + " = " + fmt(r.rate, 6) + ": ";
  const v = el("span", {class: "verdict"}, verdict(r));
  document.getElementById("train-status").appendChild(v);
  drawLoss();
  if (D.surfaceX.length) drawSurface();
}
if (D.runs.length) {
  document.getElementById("training-title").textContent =
      "Training: " + D.parameter + " \u2190 " + D.parameter + " \u2212 " + D.rate + " \u00b7 \u2207" + D.loss +
      ", " + D.steps + " = 0.." + (D.runs[0].path.length - 1) + " (each run compiled and called once per count)";
  const rate = document.getElementById("rate");
  rate.max = D.runs.length - 1;
  rate.oninput = () => showTraining(parseInt(rate.value, 10), t);
  document.getElementById("tscrub").oninput = () => showTraining(run, parseInt(document.getElementById("tscrub").value, 10));
  document.getElementById("tstep").onclick = () => showTraining(run, t + 1);
  const tplay = document.getElementById("tplay");
  tplay.onclick = play(tplay, (d) => showTraining(run, d === -Infinity ? 0 : t + d),
                       () => t >= D.runs[run].path.length - 1);
  if (!D.surfaceX.length) document.getElementById("surface").remove();
} else {
  T.remove();
}
const start = hashState();
show(start.step || 0);
if (D.runs.length) showTraining(start.rate || 0, start.t || 0);
)js";

} // namespace

std::string mlx::renderExplainPage(const ExplainData &data) {
  std::string runs = "[";
  for (auto [k, r] : llvm::enumerate(data.runs)) {
    std::string path = "[";
    for (auto [j, p] : llvm::enumerate(r.path))
      path += (j ? "," : "") + jsNumbers(p);
    runs += std::string(k ? ",\n" : "") + "{rate:" + jsNumber(r.rate) +
            ",path:" + path + "],loss:" + jsNumbers(r.loss) + "}";
  }
  runs += "]";
  std::string js = "const DATA = {function:" + jsString(data.function) +
                   ",location:" + jsString(data.location) +
                   ",\nstatements:" + jsValues(data.statements) +
                   ",\nresults:" + jsValues(data.results) +
                   ",\ngradients:" + jsValues(data.gradients) +
                   ",\nparameter:" + jsString(data.parameter) +
                   ",rate:" + jsString(data.rate) +
                   ",loss:" + jsString(data.loss) +
                   ",steps:" + jsString(data.steps) + ",\nruns:" + runs +
                   ",\nsurfaceX:" + jsNumbers(data.surfaceX) +
                   ",surfaceY:" + jsNumbers(data.surfaceY) +
                   ",surface:" + jsNumbers(data.surface) + "};\n";
  auto escape = [](llvm::StringRef text) {
    std::string out;
    for (char c : text)
      out += c == '<'   ? "&lt;"
             : c == '>' ? "&gt;"
             : c == '&' ? "&amp;"
                        : std::string(1, c);
    return out;
  };
  std::string title = escape(data.function);
  std::string html;
  llvm::raw_string_ostream os(html);
  os << "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
     << "<title>mlxc explain: " << title << "</title><style>" << kStyle
     << "</style></head>\n<body>\n<h1>" << title << " <small>"
     << escape(data.location) << "</small></h1>\n"
     << "<div class=\"controls\"><button id=\"play\">play</button>"
     << "<button id=\"back\">back</button><button id=\"step\">step</button>"
     << "<button id=\"reset\">reset</button>"
     << "<input type=\"range\" id=\"scrub\" min=\"0\" value=\"0\">"
     << "<span id=\"stepno\"></span></div>\n<div id=\"current\"></div>\n"
     << "<div id=\"equations\"></div>\n<div id=\"results\"><h2>Results"
     << (data.gradients.empty() ? "" : " and gradients") << "</h2></div>\n"
     << "<div id=\"training\"><h2 id=\"training-title\"></h2>"
     << "<div class=\"controls\"><button id=\"tplay\">play</button>"
     << "<button id=\"tstep\">step</button>"
     << "<input type=\"range\" id=\"tscrub\" min=\"0\" value=\"0\">"
     << "<label>learning rate <input type=\"range\" id=\"rate\" min=\"0\" "
        "value=\"0\"></label><span id=\"rate-label\"></span></div>"
     << "<div id=\"train-status\"></div>"
     << "<canvas id=\"loss-curve\" width=\"460\" height=\"280\"></canvas>"
     << "<canvas id=\"surface\" width=\"460\" height=\"280\"></canvas></div>\n"
     << "<script>\n"
     << js << kScript << "</script>\n</body></html>\n";
  return html;
}
