"""cnnlab serve's API through Starlette's test client: same answers as predict, refusals, load."""

from __future__ import annotations

import base64
import io
import json
import struct
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _utils import write_digit_pngs
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra is not installed")
from starlette.testclient import TestClient  # noqa: E402

from cnnlab.cli import main  # noqa: E402
from cnnlab.prediction import predict  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402
from cnnlab.serve.model import ServedModel  # noqa: E402
from cnnlab.serve.uploads import Limits  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_digit_pngs(tmp_path_factory.mktemp("serve-images"), n=12)


@pytest.fixture(scope="module")
def served(tiny_run):
    return ServedModel(tiny_run, top_k=3)


@pytest.fixture()
def client(served, tiny_run):
    with TestClient(create_app(str(tiny_run), served=served, window_ms=1)) as c:
        yield c


def _multipart(paths):
    return [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    )  # fmt: skip


def test_multipart_and_raw_answers_equal_cnnlab_predict(client, images, capsys, tiny_run):
    paths = [p for p, _ in images]
    r = client.post("/predict", files=_multipart(paths))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["class_names"] == ["zero", "one", "two"] and body["backend"] == "onnx"
    assert set(body["timings"]) >= {"decode_ms", "queue_ms", "model_ms", "batch_size", "total_ms"}
    # the command line, JSON output: the same classes and probabilities per image
    assert (
        main(["predict", str(tiny_run), *map(str, paths), "--top-k", "3", "--format", "json"]) == 0
    )
    expected = json.loads(capsys.readouterr().out)
    assert [e["image"] for e in body["predictions"]] == [p.name for p in paths]
    assert [e["top_k"] for e in body["predictions"]] == [e["top_k"] for e in expected]
    # one image as the raw body (no file name: a label, not a path)
    raw = client.post("/predict", content=paths[3].read_bytes())
    assert raw.status_code == 200
    assert raw.json()["predictions"] == [{"image": "<image 0>", "top_k": expected[3]["top_k"]}]
    # the same image as JPEG with a misleading name: the content decides, like predict on a file
    buf = io.BytesIO()
    Image.open(paths[0]).convert("RGB").save(buf, format="JPEG", quality=95)
    r = client.post("/predict", files=[("f", ("photo.txt", buf.getvalue(), "text/plain"))])
    jpg = paths[0].parent / "as.jpg"
    jpg.write_bytes(buf.getvalue())
    assert (
        r.json()["predictions"][0]["top_k"] == predict(tiny_run, jpg, top_k=3)[0].to_dict()["top_k"]
    )


def test_bad_bytes_get_422_with_a_reason_and_good_ones_still_answer(client, images):
    png = images[0][0].read_bytes()
    r = client.post("/predict", content=b"hello, I am text")
    assert r.status_code == 422
    assert "not an image" in r.json()["error"] and "content is checked" in r.json()["error"]
    named = client.post(
        "/predict", files=[("images", ("cat.png", b"GIF89a-not-really", "image/png"))]
    )
    assert named.status_code == 422 and "cat.png" in named.json()["error"]
    truncated = client.post(
        "/predict", files=[("images", ("cut.png", png[: len(png) // 2], "image/png"))]
    )
    assert truncated.status_code == 422
    assert "cannot be decoded" in truncated.json()["predictions"][0]["error"]
    assert client.post("/predict", content=b"").json()["error"] == "<image 0>: the upload is empty"
    mixed = client.post(
        "/predict",
        files=[
            ("images", ("a.png", png, "image/png")),
            ("images", ("notes.txt", b"text", "text/plain")),
        ],
    )
    assert mixed.status_code == 200
    good, bad = mixed.json()["predictions"]
    assert good["image"] == "a.png" and len(good["top_k"]) == 3
    assert bad["image"] == "notes.txt" and bad["status"] == 422 and "not an image" in bad["error"]
    form = client.post("/predict", data={"field": "value"}, files=[])
    assert form.status_code in (400, 422) and "error" in form.json()
    assert client.get("/health").json()["status"] == "ok"  # still alive


def test_oversize_bodies_bombs_and_too_many_images_get_413(served, images, tiny_run):
    png = images[0][0].read_bytes()
    limits = Limits(max_request_bytes=4000, max_pixels=100_000, max_images=3)
    with TestClient(create_app(str(tiny_run), served=served, limits=limits)) as c:
        r = c.post("/predict", content=b"\x89PNG" + b"\x00" * 5000)
        assert r.status_code == 413 and "over the limit of 4,000" in r.json()["error"]
        r = c.post("/predict", content=_bomb_png(1000, 1000))  # a header claiming 1 Mpx
        assert r.status_code == 413
        assert "1000x1000 = 1,000,000 pixels is over the limit of 100,000" in r.json()["error"]
        r = c.post("/predict", content=_bomb_png(100_000, 100_000))  # 10 gigapixels, ~100 bytes
        assert r.status_code == 413 and "decompression bomb" in r.json()["error"]
        r = c.post("/predict", files=_multipart([p for p, _ in images[:4]]))
        assert r.status_code == 413 and "4 images in one request" in r.json()["error"]
        assert c.post("/predict", content=png).status_code == 200
    with TestClient(create_app(str(tiny_run), served=served)) as c:  # default limits
        r = c.post("/predict", content=_bomb_png(8000, 8000))
        assert r.status_code == 413 and "40,000,000" in r.json()["error"]


def test_wrong_methods_and_paths_get_json_errors(client):
    r = client.get("/predict")
    assert r.status_code == 405 and r.json() == {"error": "GET is not allowed on /predict"}
    assert "POST" in r.headers["allow"]
    assert client.put("/model").status_code == 405
    r = client.get("/../../etc/passwd")
    assert r.status_code == 404 and "POST /predict" in r.json()["error"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_model_card_health_and_the_page(client):
    card = client.get("/model").json()
    assert card["classes"] == ["zero", "one", "two"] and card["input_size"] == [1, 32, 32]
    assert card["backend"] == "onnx" and card["gradcam"] is True and card["date"].endswith("UTC")
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["queued_images"] == 0
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert (
        "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    )
    text = page.text
    assert 'id="file-input"' in text and "zero, one, two" in text
    assert "http://" not in text and "https://" not in text
    assert '<link rel="icon" href="data:,">' in text  # no favicon request either


def test_many_concurrent_requests_are_batched_and_all_answered(served, images, tiny_run):
    paths = [p for p, _ in images]
    expected = {r.source: r.to_dict()["top_k"] for r in predict(tiny_run, paths, top_k=3)}
    app = create_app(str(tiny_run), served=served, window_ms=100, max_batch=16)
    with TestClient(app) as c:

        def one(i: int):
            p = paths[i % len(paths)]
            return str(p), c.post("/predict", files=_multipart([p]))

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(48)))
        assert all(r.status_code == 200 for _, r in results)
        for source, r in results:
            assert r.json()["predictions"][0]["top_k"] == expected[source]
        stats = c.get("/health").json()
    assert stats["images"] == 48 and stats["batches"] < 48  # requests shared forward passes
    assert max(r.json()["timings"]["batch_size"] for _, r in results) > 1


def test_a_full_queue_answers_503_with_retry_after(served, images, tiny_run):
    png = images[0][0].read_bytes()
    release, started = threading.Event(), threading.Event()
    inner = served.probs

    class Slow:
        """The served model, but its forward pass waits until the test releases it."""

        def __getattr__(self, name):
            return getattr(served, name)

        def probs(self, x):
            started.set()
            release.wait(30)
            return inner(x)

    app = create_app(str(tiny_run), served=Slow(), window_ms=0, max_queue=2, max_batch=1)
    with TestClient(app) as c, ThreadPoolExecutor(4) as pool:
        first = pool.submit(c.post, "/predict", content=png)  # runs (blocked)
        assert started.wait(30)  # the first request is in its forward pass
        queued = [pool.submit(c.post, "/predict", content=png) for _ in range(2)]
        for _ in range(3000):
            if app.state.batcher.waiting == 2:
                break
            threading.Event().wait(0.01)
        assert app.state.batcher.waiting == 2
        refused = c.post("/predict", content=png)
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert "busy" in refused.json()["error"]
        too_many = c.post("/predict", files=_multipart([p for p, _ in images[:3]]))
        assert too_many.status_code == 503
        release.set()
        assert all(f.result(30).status_code == 200 for f in [first, *queued])


def test_a_failing_model_gives_500_and_the_server_keeps_going(
    served, images, monkeypatch, tiny_run
):
    png = images[0][0].read_bytes()
    app = create_app(str(tiny_run), served=served)
    calls = {"n": 0}
    real = served.probs

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory (simulated)")
        return real(x)

    monkeypatch.setattr(app.state.batcher, "fn", flaky)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/predict", content=png)
        assert r.status_code == 500 and "out of memory (simulated)" in r.json()["error"]
        assert c.post("/predict", content=png).status_code == 200


def test_gradcam_overlay_of_the_top_class(client, served, images, tmp_path, tiny_run):
    path = images[1][0]
    r = client.post("/gradcam", files=_multipart([path]))
    assert r.status_code == 200, r.text
    body = r.json()
    top = predict(tiny_run, path, top_k=1, backend="torch")[0]
    assert body["class"] == top.classes[0] and body["prob"] == pytest.approx(top.probs[0], abs=1e-5)
    assert body["overlay"].startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(body["overlay"].split(",", 1)[1])))
    pixels = np.asarray(png.convert("L"), dtype=float)
    assert png.size == (224, 224) and pixels.std() > 5
    assert client.post("/gradcam", content=b"text").status_code == 422
    assert client.post("/gradcam", files=_multipart([path, path])).status_code == 422


def test_an_onnx_model_serves_predictions_but_no_gradcam(images, tmp_path, tiny_run):
    from cnnlab.export import export

    onnx_path = export(tiny_run, "onnx", dynamic_batch=True, out=tmp_path / "m.onnx").path
    with TestClient(create_app(str(onnx_path))) as c:
        assert c.get("/model").json()["gradcam"] is False
        r = c.post("/predict", content=images[2][0].read_bytes())
        assert r.status_code == 200
        assert (
            r.json()["predictions"][0]["top_k"]
            == predict(onnx_path, images[2][0])[0].to_dict()["top_k"]
        )
        r = c.post("/gradcam", content=images[2][0].read_bytes())
        assert r.status_code == 409 and "run directory" in r.json()["error"]


def test_cli_binds_localhost_by_default_and_warns_on_all_interfaces(monkeypatch, capsys, tiny_run):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    assert main(["serve", str(tiny_run), "--port", "8123"]) == 0
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8123
    err = capsys.readouterr().err
    assert "http://127.0.0.1:8123/" in err and "warning" not in err
    for host in ("0.0.0.0", "::"):
        assert main(["serve", str(tiny_run), "--host", host]) == 0
        assert "warning: listening on all interfaces" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--port", "70000"]) == 2
    assert "--port must be at most 65535" in capsys.readouterr().err
    assert main(["serve", "/no/such/run"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_without_the_serve_extra_the_error_names_it(monkeypatch, capsys, tiny_run):
    monkeypatch.setitem(sys.modules, "starlette", None)  # importing it now fails
    assert main(["serve", str(tiny_run)]) == 2
    err = capsys.readouterr().err
    assert "cnnlab serve needs starlette, which is not installed" in err
    assert "pip install 'cnnlab[serve]'" in err and "Traceback" not in err


def test_serve_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--host" in out and "127.0.0.1" in out and "POST /predict" in out
