"""The dashboard page rendered on the server from one status document.

``dashboard.js`` draws the same markup in the browser from ``/api/status`` every second:
the two must stay in step (same structure, same texts, same number formats). Every text
from the document goes through ``el()`` and is escaped; only ``Html`` made here is markup.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any

PENDING_SHOWN = 50
RESULT_TONES = {"ok": "good", "failed": "bad", "refused": "warn", "interrupted": "warn"}


class Html(str):
    """Markup made by ``el()``: inserted as is; any other ``str`` is escaped."""

    __slots__ = ()


def el(tag: str, *children: str | None, cls: str | None = None,
       **attrs: str | int | None) -> Html:
    """``<tag class=cls attrs>children</tag>``; plain strings among children are escaped."""
    attributes = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{html.escape(str(value))}"'
        for name, value in ({"class": cls} | attrs).items() if value is not None)
    inner = "".join(child if isinstance(child, Html) else html.escape(child)
                    for child in children if child is not None)
    return Html(f"<{tag}{attributes}>{inner}</{tag}>")


def size_text(count: float | None) -> str:
    """Bytes as ``512 B``, ``1.5 KiB``, ``10.0 MiB`` (binary units)."""
    if count is None:
        return "?"
    if count < 1024:
        return f"{int(count)} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{math.floor(value * 10 + 0.5) / 10:.1f} {unit}"


def duration_text(seconds: float | None) -> str:
    """``17 s``, ``2 min 5 s``, ``1 h 3 min``; ``?`` when unknown."""
    if seconds is None or seconds < 0:
        return "?"
    whole = math.floor(seconds + 0.5)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def stamp_text(text: str | None) -> str:
    """``2026-11-30T12:00:00Z`` -> ``2026-11-30 12:00:00 UTC``."""
    return f"{text[:10]} {text[11:19]} UTC" if text and len(text) >= 19 else "?"


def age_text(text: str | None, now: str | None) -> str:
    """How long before ``now`` the time ``text`` was, e.g. ``2 min 5 s ago``."""
    then, current = _parse_time(text), _parse_time(now)
    if then is None or current is None:
        return ""
    return f"{duration_text(max(0.0, (current - then).total_seconds()))} ago"


def _names(doc: dict[str, Any]) -> dict[str, str]:
    return {loc.get("key", ""): loc.get("display") or loc.get("key", "")
            for loc in doc.get("locations") or []}


def _where(names: dict[str, str], key: str | None) -> str:
    return names.get(key or "", key or "")


def _route(names: dict[str, str], source: str | None, target: str | None) -> str:
    return " → ".join(_where(names, key) for key in (source, target) if key)


def _badge(text: str, tone: str) -> Html:
    return el("span", text, cls=f"badge {tone}")


def path_html(text: str) -> Html:
    """A path that may wrap after each ``/`` (``<wbr>``), never inside a name."""
    return Html("/<wbr>".join(html.escape(part) for part in text.split("/")))


def _path_cell(path: str, detail: str, title: str | None = None) -> Html:
    """A path, and under it a small line (where it goes, why)."""
    return el("td", el("span", path_html(path), cls="path"),
              el("span", detail, cls="detail") if detail else None, title=title)


def _card(section_id: str, title: str, *body: str | None, wide: bool = False) -> Html:
    return el("section", el("h2", title), *body, cls="card wide" if wide else "card",
              id=section_id)


def _table(headings: list[str], rows: list[Html]) -> Html:
    return el("table", el("thead", el("tr", *(el("th", h) for h in headings))),
              el("tbody", *rows))


def _facts(*pairs: tuple[str, str | None]) -> Html:
    return el("dl", *(Html(el("dt", name) + el("dd", value)) for name, value in pairs),
              cls="facts")


def _engine(doc: dict[str, Any]) -> Html:
    engine, now = doc.get("engine") or {}, doc.get("generated_at")
    if engine.get("running"):
        since = engine.get("since")
        state = Html(_badge("running", "good") + html.escape(
            f" pid {engine.get('pid')} · {engine.get('mode') or '?'} mode"))
        since_text = f"{stamp_text(since)} ({age_text(since, now)})"
    else:
        state, since_text = _badge("not running", "idle"), "—"
    last = doc.get("last_round")
    if last:
        result, finished = str(last.get("result")), last.get("finished_at")
        round_text = Html(_badge(result, RESULT_TONES.get(result, "warn")) + html.escape(
            f" {stamp_text(finished)} ({age_text(finished, now)})"))
        summary = str(last.get("summary") or "")
    else:
        round_text, summary = Html(html.escape("never")), "—"
    store = doc.get("state") or {}
    return _card("engine", "Engine", _facts(
        ("Engine", state), ("Since", since_text), ("Last round", round_text),
        ("Summary", summary),
        ("State", Html(el("span", path_html(str(store.get("path") or "?")), cls="path")
                       + html.escape(f" · {size_text(store.get('bytes'))}")))))


def _progress(doc: dict[str, Any], names: dict[str, str]) -> Html:
    progress = doc.get("progress")
    if not progress:
        return _card("progress", "Current round",
                     el("p", _badge("idle", "idle"), " no round is being applied"))
    files_done, files_total = progress.get("files_done", 0), progress.get("files_total", 0)
    bytes_done, bytes_total = progress.get("bytes_done", 0), progress.get("bytes_total", 0)
    done, total = (bytes_done, bytes_total) if bytes_total else (files_done, files_total)
    percent = math.floor(100 * done / total) if total else 0
    rate = progress.get("rate")
    flying = [el("li", el("span", el("span", path_html(item.get("path", "")), cls="path"),
                          el("span", f"→ {_where(names, item.get('target'))}",
                             cls="detail")),
                  el("progress", max=item.get("bytes_total") or 1,
                     value=item.get("bytes_done") or 0),
                  el("span", f"{size_text(item.get('bytes_done'))} of "
                             f"{size_text(item.get('bytes_total'))}", cls="muted small num"))
              for item in progress.get("in_flight") or []]
    return _card(
        "progress", "Current round",
        el("div", el("progress", max=total or 1, value=done), el("strong", f"{percent} %"),
           cls="bar"),
        el("p", f"{files_done} of {files_total} files · {size_text(bytes_done)} of "
                f"{size_text(bytes_total)}"),
        el("p", f"{size_text(rate) + '/s' if rate is not None else '? /s'} · ETA "
                f"{duration_text(progress.get('eta'))}", cls="muted"),
        el("h3", f"In flight ({len(flying)})") if flying else None,
        el("ul", *flying, cls="flying") if flying else None)


def _locations(doc: dict[str, Any]) -> Html:
    rows = []
    for loc in doc.get("locations") or []:
        available = bool(loc.get("available"))
        status = el("td", _badge("available", "good") if available else
                    _badge("unavailable", "bad"),
                    None if available else el("span", f" {loc.get('message') or ''}",
                                              cls="why"))
        versions = loc.get("versions")
        kept = (f"{versions.get('count', 0)} · {size_text(versions.get('bytes'))}"
                if versions else "—")
        rows.append(el("tr", el("td", path_html(loc.get("display") or loc.get("key") or ""),
                                cls="path"),
                       el("td", loc.get("kind") or ""), status, el("td", kept, cls="num")))
    return _card("locations", f"Locations ({len(rows)})",
                 _table(["Location", "Kind", "Status", "Kept versions"], rows), wide=True)


def _listing(section_id: str, title: str, items: list[Html], headings: list[str],
             empty: str, count: int | None = None) -> Html:
    shown = len(items) if count is None else count
    body = _table(headings, items) if items else el("p", empty, cls="muted")
    return _card(section_id, f"{title} ({shown})", body)


def _places(names: dict[str, str], keys: list[str] | None) -> str:
    return ", ".join(_where(names, key) for key in keys or [])


def _conflicts(doc: dict[str, Any], names: dict[str, str]) -> Html:
    rows = [el("tr", _path_cell(item.get("path", ""), item.get("detail") or ""),
               el("td", _places(names, item.get("locations"))))
            for item in doc.get("conflicts") or []]
    return _listing("conflicts", "Unresolved conflicts", rows, ["Path", "Where"],
                    "No unresolved conflicts.")


def _paused(doc: dict[str, Any], names: dict[str, str]) -> Html:
    rows = [el("tr", _path_cell(item.get("path", ""), ""),
               el("td", _places(names, item.get("locations"))))
            for item in doc.get("paused_deletions") or []]
    return _listing("paused", "Paused deletions", rows, ["Path", "Would be deleted in"],
                    "No deletions are paused.")


def _recent(doc: dict[str, Any], names: dict[str, str]) -> Html:
    rows = [el("tr", el("td", (item.get("time") or "")[11:19], cls="muted num",
                        title=stamp_text(item.get("time"))),
               el("td", item.get("action") or ""),
               _path_cell(item.get("path") or "",
                          _route(names, item.get("source"), item.get("target")),
                          title=item.get("message") or None))
            for item in reversed(doc.get("recent") or [])]
    return _listing("recent", "Recent actions", rows, ["Time (UTC)", "Action", "Path"],
                    "Nothing applied yet.")


def _pending(doc: dict[str, Any], names: dict[str, str]) -> Html:
    pending = doc.get("pending")
    if pending is None:
        return _card("pending", "Pending changes", el("p", "Not computed.", cls="muted"))
    rows = [el("tr", el("td", item.get("op") or ""),
               _path_cell(f"{item['from_path']} → {item.get('path', '')}"
                          if item.get("from_path") else item.get("path", ""),
                          _route(names, item.get("source"), item.get("target"))))
            for item in pending[:PENDING_SHOWN]]
    if len(pending) > PENDING_SHOWN:
        rows.append(el("tr", el("td", f"… and {len(pending) - PENDING_SHOWN} more",
                                cls="muted", colspan=2)))
    return _listing("pending", "Pending changes", rows, ["Change", "Path"],
                    "Nothing pending: the locations agree.", count=len(pending))


def render_status(doc: dict[str, Any]) -> Html:
    """The inside of ``<main>``: every section of the dashboard for one document."""
    names = _names(doc)
    return Html("".join([
        el("p", f"Updated {stamp_text(doc.get('generated_at'))}", cls="muted small",
           id="updated"),
        el("div", _engine(doc), _progress(doc, names), _locations(doc), _conflicts(doc, names),
           _paused(doc, names), _recent(doc, names), _pending(doc, names), cls="grid"),
    ]))


def render_page(doc: dict[str, Any] | None, error: str | None = None) -> str:
    """The whole page; with ``doc`` None it shows ``error`` and waits for the next refresh."""
    note = el("div", f"Cannot show the status: {error}" if error else "", cls="offline",
              id="offline", **({} if error else {"hidden": "hidden"}))
    content = render_status(doc) if doc is not None else ""
    return "<!DOCTYPE html>\n" + el(
        "html",
        el("head", Html('<meta charset="utf-8">'),
           Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
           el("title", "filesync dashboard"),
           Html('<link rel="stylesheet" href="/dashboard.css">')),
        el("body",
           el("header", el("h1", "filesync"), el("span", "dashboard", cls="muted"),
              el("noscript", "JavaScript is off: reload the page to update it.")),
           note, el("main", content, id="status",
                          data_generated=(doc or {}).get("generated_at")),
           Html('<script src="/dashboard.js"></script>')),
        lang="en")
