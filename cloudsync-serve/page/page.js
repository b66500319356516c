// The page of `cloudsync serve`: the report queue, a report's analysis, Re-run & Sync with
// live progress (Server-Sent Events), and the jobs. Plain JavaScript over /api/v1, no build.
"use strict";

const api = "/api/v1";
const PAGE = 50;
const view = { report: null, list: "missing_on_dst", offset: 0, total: 0 };

const $ = (id) => document.getElementById(id);

function text(value) {
  return value === null || value === undefined ? "" : String(value);
}

function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = text(value);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

async function call(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(api + path, opts);
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const field = data && data.field ? ` (${data.field})` : "";
    throw new Error((data && data.error ? data.error : r.statusText) + field);
  }
  return data;
}

function differences(counts) {
  if (!counts) return "";
  return counts.missing_on_dst + counts.missing_on_src + counts.differ;
}

async function refreshQueue() {
  let data;
  try {
    data = await call("GET", "/reports");
  } catch (e) {
    return;
  }
  const body = $("queue").querySelector("tbody");
  body.replaceChildren();
  for (const r of data.reports) {
    const row = document.createElement("tr");
    row.id = "report-row-" + r.id;
    row.dataset.id = r.id;
    row.dataset.state = r.state;
    cell(row, r.created.replace("T", " ").slice(0, 19));
    cell(row, r.kind);
    cell(row, r.src || "");
    cell(row, r.dst || (r.follows ? "follow-up of " + r.follows : ""));
    cell(row, r.state, "state state-" + r.state);
    cell(row, differences(r.counts), "num");
    const td = document.createElement("td");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "secondary";
    open.id = "open-" + r.id;
    open.textContent = "Open";
    open.disabled = r.state !== "done";
    open.setAttribute("aria-label", "Open report " + r.id);
    open.addEventListener("click", () => openReport(r.id));
    td.appendChild(open);
    row.appendChild(td);
    body.appendChild(row);
  }
  $("queue-empty").hidden = data.reports.length > 0;
}

async function openReport(id) {
  view.report = id;
  view.offset = 0;
  $("resync-status").textContent = "";
  $("resync-progress").value = 0;
  $("resync-progress").max = 1;
  $("resync").disabled = false;
  await loadReport();
  $("report").hidden = false;
  $("report-title").focus?.();
}

async function loadReport() {
  const q = `?list=${view.list}&offset=${view.offset}&limit=${PAGE}`;
  const data = await call("GET", `/reports/${view.report}${q}`);
  const rep = data.report;
  $("report-id").textContent = view.report;
  if (!rep) {
    $("report-where").textContent = "This report is " + data.job.state + ".";
    return;
  }
  $("report-where").textContent = `${rep.src} → ${rep.dst}, compared by ${rep.method}`;
  for (const k of ["missing_on_dst", "missing_on_src", "differ", "matched", "errors"]) {
    $("count-" + k).textContent = rep.counts[k];
  }
  for (const b of document.querySelectorAll(".list-button")) {
    b.setAttribute("aria-pressed", b.dataset.list === view.list ? "true" : "false");
  }
  const list = data.list;
  view.total = list.total;
  const body = $("report-list").querySelector("tbody");
  body.replaceChildren();
  for (const item of list.items) {
    const row = document.createElement("tr");
    cell(row, item.path);
    cell(row, item.src_size, "num");
    cell(row, item.dst_size, "num");
    body.appendChild(row);
  }
  const label = document.getElementById("list-" + view.list).textContent;
  $("report-list-caption").textContent = `${label}: ${list.total} files`;
  const last = Math.min(view.offset + list.items.length, list.total);
  $("page-info").textContent = list.total ? `${view.offset + 1}–${last} of ${list.total}` : "none";
  $("page-prev").disabled = view.offset === 0;
  $("page-next").disabled = last >= list.total;
}

function showProgress(p) {
  const bar = $("resync-progress");
  bar.max = Math.max(p.planned_files, 1);
  bar.value = Math.min(p.done_files, bar.max);
  bar.setAttribute("aria-valuetext", `${p.done_files} of ${p.planned_files} files`);
}

async function resync() {
  $("resync").disabled = true;
  $("resync-status").textContent = "starting…";
  let job;
  try {
    job = await call("POST", `/reports/${view.report}/resync`, {});
  } catch (e) {
    $("resync-status").textContent = "could not start: " + e.message;
    $("resync").disabled = false;
    return;
  }
  const progress = { planned_files: 0, done_files: 0 };
  const events = new EventSource(`${api}/jobs/${job.id}/events`);
  events.addEventListener("state", (e) => {
    const info = JSON.parse(e.data);
    Object.assign(progress, info.progress);
    showProgress(progress);
    $("resync-status").textContent = info.state;
  });
  events.addEventListener("planned", (e) => {
    const ev = JSON.parse(e.data);
    if (ev.action === "copy" || ev.action === "update") progress.planned_files += 1;
    showProgress(progress);
  });
  events.addEventListener("transfer_done", () => {
    progress.done_files += 1;
    showProgress(progress);
    $("resync-status").textContent = `running: ${progress.done_files} of ${progress.planned_files}`;
  });
  events.addEventListener("end", (e) => {
    events.close();
    const info = JSON.parse(e.data);
    showProgress(info.progress);
    if (info.state === "done" && info.progress.planned_files === 0) {
      $("resync-progress").value = $("resync-progress").max;
    }
    $("resync-status").textContent = info.errors && info.errors.length
      ? `${info.state} (${info.errors.length} errors)`
      : info.state;
    $("resync-status").dataset.state = info.state;
    $("resync").disabled = false;
    refreshQueue();
    refreshJobs();
  });
}

async function refreshJobs() {
  let data;
  try {
    data = await call("GET", "/jobs");
  } catch (e) {
    return;
  }
  const body = $("jobs").querySelector("tbody");
  body.replaceChildren();
  for (const j of data.jobs) {
    const row = document.createElement("tr");
    row.id = "job-row-" + j.id;
    row.dataset.state = j.state;
    cell(row, j.id);
    cell(row, j.op + (j.schedule ? ` (${j.schedule})` : ""));
    cell(row, j.src);
    cell(row, j.dst);
    cell(row, j.state, "state state-" + j.state);
    const td = document.createElement("td");
    const bar = document.createElement("progress");
    bar.max = Math.max(j.progress.planned_files, 1);
    bar.value = j.state === "done" ? bar.max : Math.min(j.progress.done_files, bar.max);
    bar.setAttribute("aria-label", `job ${j.id}: ${j.progress.done_files} of ${j.progress.planned_files} files`);
    td.appendChild(bar);
    row.appendChild(td);
    body.appendChild(row);
  }
  $("jobs-empty").hidden = data.jobs.length > 0;
}

$("report-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("form-error").textContent = "";
  try {
    await call("POST", "/reports", { src: $("src").value.trim(), dst: $("dst").value.trim() });
    await refreshQueue();
  } catch (err) {
    $("form-error").textContent = err.message;
  }
});
for (const b of document.querySelectorAll(".list-button")) {
  b.addEventListener("click", () => {
    view.list = b.dataset.list;
    view.offset = 0;
    loadReport();
  });
}
$("page-prev").addEventListener("click", () => {
  view.offset = Math.max(0, view.offset - PAGE);
  loadReport();
});
$("page-next").addEventListener("click", () => {
  view.offset += PAGE;
  loadReport();
});
$("resync").addEventListener("click", resync);

refreshQueue();
refreshJobs();
setInterval(refreshQueue, 1000);
setInterval(refreshJobs, 1000);
