// The filesync dashboard: redraws <main id="status"> from /api/status every second.
// Mirrors filesync/dashboard_page.py (same markup, same texts). Text from the document
// (file names are user-controlled) only ever goes into textContent or attribute values,
// never into innerHTML.
"use strict";

(function () {
  const PENDING_SHOWN = 50;
  const REFRESH_MS = 1000;
  const RESULT_TONES = { ok: "good", failed: "bad", refused: "warn", interrupted: "warn" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (name === "cls") node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function sizeText(count) {
    if (count === null || count === undefined) return "?";
    if (count < 1024) return `${Math.trunc(count)} B`;
    let value = count;
    let unit = "KiB";
    for (unit of ["KiB", "MiB", "GiB", "TiB"]) {
      value /= 1024;
      if (value < 1024 || unit === "TiB") break;
    }
    return `${(Math.floor(value * 10 + 0.5) / 10).toFixed(1)} ${unit}`;
  }

  function durationText(seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return "?";
    const whole = Math.floor(seconds + 0.5);
    if (whole < 60) return `${whole} s`;
    if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
    return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
  }

  function stampText(text) {
    return text && text.length >= 19 ? `${text.slice(0, 10)} ${text.slice(11, 19)} UTC` : "?";
  }

  function ageText(text, now) {
    const then = Date.parse(text || "");
    const current = Date.parse(now || "");
    if (Number.isNaN(then) || Number.isNaN(current)) return "";
    return `${durationText(Math.max(0, (current - then) / 1000))} ago`;
  }

  function where(names, key) {
    return names.has(key || "") ? names.get(key || "") : key || "";
  }

  function route(names, source, target) {
    return [source, target].filter((key) => key).map((key) => where(names, key)).join(" → ");
  }

  const badge = (text, tone) => el("span", { cls: `badge ${tone}` }, text);

  // A path that may wrap after each "/" (<wbr>), never inside a name.
  function pathNodes(text) {
    const nodes = [];
    String(text).split("/").forEach((part, index) => {
      if (index) nodes.push("/", el("wbr"));
      nodes.push(part);
    });
    return nodes;
  }

  // A path, and under it a small line (where it goes, why).
  function pathCell(path, detail, title) {
    return el("td", { title: title || null }, el("span", { cls: "path" }, ...pathNodes(path)),
      detail ? el("span", { cls: "detail" }, detail) : null);
  }

  function card(id, title, body, wide) {
    return el("section", { cls: wide ? "card wide" : "card", id }, el("h2", null, title), ...body);
  }

  function table(headings, rows) {
    return el("table", null,
      el("thead", null, el("tr", null, ...headings.map((h) => el("th", null, h)))),
      el("tbody", null, ...rows));
  }

  function facts(pairs) {
    const list = el("dl", { cls: "facts" });
    for (const [name, value] of pairs) list.append(el("dt", null, name), el("dd", null, ...value));
    return list;
  }

  function listing(id, title, rows, headings, empty, count) {
    const shown = count === undefined ? rows.length : count;
    const body = rows.length ? table(headings, rows) : el("p", { cls: "muted" }, empty);
    return card(id, `${title} (${shown})`, [body]);
  }

  function engineCard(doc) {
    const engine = doc.engine || {};
    const now = doc.generated_at;
    let state;
    let sinceText;
    if (engine.running) {
      state = [badge("running", "good"), ` pid ${engine.pid} · ${engine.mode || "?"} mode`];
      sinceText = `${stampText(engine.since)} (${ageText(engine.since, now)})`;
    } else {
      state = [badge("not running", "idle")];
      sinceText = "—";
    }
    const last = doc.last_round;
    let roundText;
    let summary;
    if (last) {
      const result = String(last.result);
      roundText = [badge(result, RESULT_TONES[result] || "warn"),
        ` ${stampText(last.finished_at)} (${ageText(last.finished_at, now)})`];
      summary = String(last.summary || "");
    } else {
      roundText = ["never"];
      summary = "—";
    }
    const store = doc.state || {};
    return card("engine", "Engine", [facts([
      ["Engine", state], ["Since", [sinceText]], ["Last round", roundText],
      ["Summary", [summary]],
      ["State", [el("span", { cls: "path" }, ...pathNodes(store.path || "?")),
        ` · ${sizeText(store.bytes)}`]],
    ])]);
  }

  function progressCard(doc, names) {
    const progress = doc.progress;
    if (!progress) {
      return card("progress", "Current round",
        [el("p", null, badge("idle", "idle"), " no round is being applied")]);
    }
    const filesDone = progress.files_done || 0;
    const filesTotal = progress.files_total || 0;
    const bytesDone = progress.bytes_done || 0;
    const bytesTotal = progress.bytes_total || 0;
    const [done, total] = bytesTotal ? [bytesDone, bytesTotal] : [filesDone, filesTotal];
    const percent = total ? Math.floor((100 * done) / total) : 0;
    const rate = progress.rate;
    const flying = (progress.in_flight || []).map((item) => el("li", null,
      el("span", null, el("span", { cls: "path" }, ...pathNodes(item.path || "")),
        el("span", { cls: "detail" }, `→ ${where(names, item.target)}`)),
      el("progress", { max: item.bytes_total || 1, value: item.bytes_done || 0 }),
      el("span", { cls: "muted small num" },
        `${sizeText(item.bytes_done)} of ${sizeText(item.bytes_total)}`)));
    const rateText = rate !== null && rate !== undefined ? `${sizeText(rate)}/s` : "? /s";
    return card("progress", "Current round", [
      el("div", { cls: "bar" }, el("progress", { max: total || 1, value: done }),
        el("strong", null, `${percent} %`)),
      el("p", null, `${filesDone} of ${filesTotal} files · ${sizeText(bytesDone)} of ` +
        `${sizeText(bytesTotal)}`),
      el("p", { cls: "muted" }, `${rateText} · ETA ${durationText(progress.eta)}`),
      flying.length ? el("h3", null, `In flight (${flying.length})`) : null,
      flying.length ? el("ul", { cls: "flying" }, ...flying) : null,
    ]);
  }

  function locationsCard(doc) {
    const rows = (doc.locations || []).map((loc) => {
      const available = Boolean(loc.available);
      const status = el("td", null,
        available ? badge("available", "good") : badge("unavailable", "bad"),
        available ? null : el("span", { cls: "why" }, ` ${loc.message || ""}`));
      const versions = loc.versions;
      const kept = versions ? `${versions.count || 0} · ${sizeText(versions.bytes)}` : "—";
      return el("tr", null, el("td", { cls: "path" }, ...pathNodes(loc.display || loc.key || "")),
        el("td", null, loc.kind || ""), status, el("td", { cls: "num" }, kept));
    });
    return card("locations", `Locations (${rows.length})`,
      [table(["Location", "Kind", "Status", "Kept versions"], rows)], true);
  }

  const places = (names, keys) => (keys || []).map((key) => where(names, key)).join(", ");

  function conflictsCard(doc, names) {
    const rows = (doc.conflicts || []).map((item) => el("tr", null,
      pathCell(item.path || "", item.detail || ""), el("td", null, places(names, item.locations))));
    return listing("conflicts", "Unresolved conflicts", rows, ["Path", "Where"],
      "No unresolved conflicts.");
  }

  function pausedCard(doc, names) {
    const rows = (doc.paused_deletions || []).map((item) => el("tr", null,
      pathCell(item.path || "", ""), el("td", null, places(names, item.locations))));
    return listing("paused", "Paused deletions", rows, ["Path", "Would be deleted in"],
      "No deletions are paused.");
  }

  function recentCard(doc, names) {
    const rows = (doc.recent || []).slice().reverse().map((item) => el("tr", null,
      el("td", { cls: "muted num", title: stampText(item.time) }, (item.time || "").slice(11, 19)),
      el("td", null, item.action || ""),
      pathCell(item.path || "", route(names, item.source, item.target), item.message)));
    return listing("recent", "Recent actions", rows, ["Time (UTC)", "Action", "Path"],
      "Nothing applied yet.");
  }

  function pendingCard(doc, names) {
    const pending = doc.pending;
    if (pending === null || pending === undefined) {
      return card("pending", "Pending changes", [el("p", { cls: "muted" }, "Not computed.")]);
    }
    const rows = pending.slice(0, PENDING_SHOWN).map((item) => el("tr", null,
      el("td", null, item.op || ""),
      pathCell(item.from_path ? `${item.from_path} → ${item.path || ""}` : item.path || "",
        route(names, item.source, item.target))));
    if (pending.length > PENDING_SHOWN) {
      rows.push(el("tr", null, el("td", { cls: "muted", colspan: 2 },
        `… and ${pending.length - PENDING_SHOWN} more`)));
    }
    return listing("pending", "Pending changes", rows, ["Change", "Path"],
      "Nothing pending: the locations agree.", pending.length);
  }

  function renderStatus(doc) {
    const names = new Map((doc.locations || []).map((loc) => [loc.key || "", loc.display || loc.key || ""]));
    return [
      el("p", { cls: "muted small", id: "updated" }, `Updated ${stampText(doc.generated_at)}`),
      el("div", { cls: "grid" }, engineCard(doc), progressCard(doc, names), locationsCard(doc),
        conflictsCard(doc, names), pausedCard(doc, names), recentCard(doc, names),
        pendingCard(doc, names)),
    ];
  }

  // The time of the document on screen, for the note when the next one cannot be read.
  let lastShown = document.getElementById("status").dataset.generated || null;

  function showProblem(text) {
    const note = document.getElementById("offline");
    const since = lastShown ? ` Showing the status of ${stampText(lastShown)}.` : "";
    note.textContent = `${text}${since} Retrying…`;
    note.hidden = false;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      if (!response.ok) {
        showProblem(`The filesync status could not be read (HTTP ${response.status}).`);
        return;
      }
      const doc = await response.json();
      document.getElementById("status").replaceChildren(...renderStatus(doc));
      document.getElementById("offline").hidden = true;
      lastShown = doc.generated_at;
    } catch (error) {
      showProblem("Cannot reach filesync: is the watcher still running?");
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  setTimeout(refresh, REFRESH_MS);
})();
