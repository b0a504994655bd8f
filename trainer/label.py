"""``python -m trainer label DIR``: label a recording folder's unlabelled captchas by hand, in a browser.

A small page on 127.0.0.1 shows the images without a known answer, most uncertain first, each
pre-filled with the model's guess. Keyboard first: type or accept the guess, Enter saves and moves
on, Escape skips, Ctrl+Z undoes the last label. Every label is written at once to
``DIR/records/labels.tsv`` (``file<TAB>label``, the trainer's labels format, paths relative to DIR)
by replacing the file atomically, so closing the tab or killing the server loses nothing.
``python -m trainer adapt DIR`` uses these labels.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from scrapy_captcha.recording import HAND_LABELS_FILE, RECORDS_DIR, replace_text

STATIC = Path(__file__).with_name("label_static")
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
                ".bmp": "image/bmp"}


def hand_labels_path(folder: str | Path) -> Path:
    return Path(folder) / RECORDS_DIR / HAND_LABELS_FILE


def read_hand_labels(folder: str | Path) -> dict[str, str]:
    """The hand labels of a folder: ``{relative path: label}`` (empty if there are none)."""
    path = hand_labels_path(folder)
    if not path.exists():
        return {}
    labels = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        name, sep, label = line.partition("\t")
        if not sep or not name or not label:
            raise ValueError(f"{path}: line {number} is not 'file<TAB>label': {line!r}")
        labels[name] = label
    return labels


def check_label(label: str) -> str:
    """A label as typed, stripped; ValueError if it cannot be one."""
    label = label.strip()
    if not label:
        raise ValueError("the label is empty")
    if not label.isprintable() or any(c.isspace() for c in label):
        raise ValueError(f"the label {label!r} holds spaces or control characters")
    return label


_write_lock = threading.Lock()


def write_hand_label(folder: str | Path, name: str, label: str | None) -> dict[str, str]:
    """Set (or with ``None`` remove) one hand label; the labels file is replaced atomically. Returns all labels."""
    with _write_lock:
        labels = read_hand_labels(folder)
        if label is None:
            labels.pop(name, None)
        else:
            labels[name] = check_label(label)
        path = hand_labels_path(folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, "".join(f"{key}\t{value}\n" for key, value in sorted(labels.items())))
        return labels


@dataclass
class Item:
    name: str  # relative to the folder
    guess: str
    confidence: float


def items_to_label(folder: str | Path, weights: str | Path | None = None) -> list[Item]:
    """The folder's images without a known answer (hand-labelled ones included), most uncertain guess first."""
    from scrapy_captcha.solver import Solver

    from .adapt_data import collect

    folder = Path(folder)
    pool = collect(folder)
    paths = [path for path, _ in pool.unlabelled] + [path for path, _, source in pool.labelled if source == "hand"]
    if not paths:
        raise ValueError(f"{folder}: every image already has a known answer; nothing to label")
    solver = Solver.from_path(weights)
    items = []
    for start in range(0, len(paths), 128):
        chunk = paths[start:start + 128]
        for path, prediction in zip(chunk, solver.solve_batch([p.read_bytes() for p in chunk])):
            items.append(Item(str(path.relative_to(folder)), prediction.text, prediction.confidence))
    return sorted(items, key=lambda item: (item.confidence, item.name))


class LabelServer(ThreadingHTTPServer):
    """Serves the labelling page for one folder."""

    daemon_threads = True

    def __init__(self, folder: str | Path, items: list[Item], host: str = "127.0.0.1", port: int = 0):
        self.folder = Path(folder)
        self.items = items
        self.by_name = {item.name: item for item in items}
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def state(self) -> dict[str, Any]:
        labels = read_hand_labels(self.folder)
        return {"items": [{**item.__dict__, "label": labels.get(item.name)} for item in self.items],
                "labelled": sum(item.name in labels for item in self.items), "total": len(self.items)}


class _Handler(BaseHTTPRequestHandler):
    server: LabelServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send_file(STATIC / "index.html")
        elif url.path in ("/label.js", "/label.css"):
            self._send_file(STATIC / url.path.lstrip("/"))
        elif url.path == "/api/items":
            self._send_json(200, self.server.state())
        elif url.path == "/image":
            name = parse_qs(url.query).get("name", [""])[0]
            if name not in self.server.by_name:  # only listed images: no path from the client reaches the disk
                self._send_json(404, {"error": f"no image {name!r} to label"})
                return
            path = self.server.folder / name
            self._send(200, path.read_bytes(), _IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream"))
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/api/label":
            self._send_json(404, {"error": "not found"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            name, label = body.get("name"), body.get("label")
            if name not in self.server.by_name:
                raise ValueError(f"no image {name!r} to label")
            if label is not None and not isinstance(label, str):
                raise ValueError("label must be a string or null")
            labels = write_hand_label(self.server.folder, name, label)
        except ValueError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, {"labelled": sum(item.name in labels for item in self.server.items), "total": len(self.server.items)})

    def _send_file(self, path: Path) -> None:
        self._send(200, path.read_bytes(), _CONTENT_TYPES[path.suffix])

    def _send_json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


def serve(folder: str | Path, weights: str | Path | None = None, port: int = 0) -> None:
    """Serve the labelling page until Ctrl-C."""
    items = items_to_label(folder, weights)
    server = LabelServer(folder, items, port=port)
    print(f"{len(items)} images to label in {folder}; open {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"labels are in {hand_labels_path(folder)}", flush=True)
