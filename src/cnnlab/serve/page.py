"""The page of ``cnnlab serve``: one self-contained HTML document, usable offline.

Styles and the one script are inline; the Content-Security-Policy allows exactly that script (by
its SHA-256), images from ``data:``/``blob:`` URLs and requests to this server only, so nothing is
fetched from anywhere else. Everything that comes from the run or a client (class names, file
names, error messages) is HTML-escaped on the server and inserted with ``textContent`` by the
script, never as HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from cnnlab.serve.uploads import SNIFFED_FORMATS, Limits

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0 auto;max-width:1000px;
padding:1em 2em;color:#222;background:#fff}h1{font-size:1.5em;margin:.2em 0}
table.card{border-collapse:collapse;font-size:.9em;margin:.4em 0}
table.card td,table.card th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
table.card th{background:#f4f4f4;font-weight:600}
#drop{border:2px dashed #8aa;border-radius:8px;padding:1.4em;text-align:center;margin:1em 0;
background:#f7fafa}#drop.over{background:#e2f0f0;border-color:#277}
.result{display:flex;gap:1em;border:1px solid #ddd;border-radius:6px;padding:.7em;margin:.7em 0}
.result img{width:112px;height:112px;object-fit:contain;background:#eee;border:1px solid #ddd;
image-rendering:pixelated}.result .name{font-weight:600;word-break:break-all}
.bars{flex:1;min-width:14em}.bar{display:flex;align-items:center;gap:.5em;margin:.15em 0;
font-size:.9em}.bar .label{width:9em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar .track{flex:1;background:#eee;height:.9em;border-radius:3px}
.bar .fill{background:#2a7ab0;height:100%;border-radius:3px}.bar.top .fill{background:#e07020}
.bar .pct{width:4.5em;text-align:right;font-variant-numeric:tabular-nums}
.top1{font-size:1.2em;margin:.2em 0 .4em}.error{color:#a00;background:#fff0f0;
border-left:4px solid #c00;padding:.4em .7em}.muted{color:#666;font-size:.85em}
.cam{text-align:center;font-size:.8em;color:#555}
"""

SCRIPT = """
(function(){
var input=document.getElementById('file-input'),drop=document.getElementById('drop'),
    out=document.getElementById('results'),status=document.getElementById('status'),
    gradcam=document.body.getAttribute('data-gradcam')==='1';
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;
  if(text!==undefined)e.textContent=text;return e;}
function pct(p){return (100*p).toFixed(2)+'%';}
function bars(entry){var box=el('div','bars');
  box.appendChild(el('div','top1',entry.top_k[0]['class']));
  entry.top_k.forEach(function(t,i){var row=el('div','bar'+(i===0?' top':''));
    row.appendChild(el('span','label',t['class']));var track=el('span','track'),
    fill=el('span','fill');fill.style.display='block';fill.style.width=pct(t.prob);
    track.appendChild(fill);row.appendChild(track);row.appendChild(el('span','pct',pct(t.prob)));
    box.appendChild(row);});return box;}
function card(file){var box=el('div','result'),left=el('div'),img=el('img');
  img.alt=file.name;img.src=URL.createObjectURL(file);left.appendChild(img);
  box.appendChild(left);var right=el('div','bars');right.appendChild(el('div','name',file.name));
  right.appendChild(el('div','muted','classifying ...'));box.appendChild(right);
  out.appendChild(box);return {box:box,right:right,img:img};}
function showCam(file,c){var fd=new FormData();fd.append('image',file,file.name);
  var slot=el('div','cam','Grad-CAM ...');c.box.appendChild(slot);
  fetch('/gradcam',{method:'POST',body:fd}).then(function(r){return r.json().then(
    function(j){return [r.ok,j];});}).then(function(a){slot.textContent='';
    if(!a[0]){slot.appendChild(el('div','error',a[1].error||'Grad-CAM failed'));return;}
    var img=el('img');img.alt='Grad-CAM of '+a[1]['class'];img.src=a[1].overlay;
    slot.appendChild(img);slot.appendChild(el('div',null,'Grad-CAM: '+a[1]['class']));})
  .catch(function(e){slot.textContent='Grad-CAM failed: '+e;});}
function send(files){if(!files.length)return;out.textContent='';
  var cards=files.map(card),fd=new FormData();
  files.forEach(function(f){fd.append('images',f,f.name);});
  status.className='muted';status.textContent='sending '+files.length+' image(s) ...';
  fetch('/predict',{method:'POST',body:fd}).then(function(r){return r.json().then(
    function(j){return [r.status,j];},function(){return [r.status,{error:'HTTP '+r.status}];});})
  .then(function(a){var code=a[0],j=a[1];
    if(!j.predictions){status.className='error';status.textContent=j.error||('HTTP '+code);
      cards.forEach(function(c){c.right.lastChild.textContent='';});return;}
    status.className='muted';status.textContent=(j.timings&&j.timings.total_ms!==undefined)?
      'answered in '+j.timings.total_ms.toFixed(1)+' ms':'';
    j.predictions.forEach(function(p,i){var c=cards[i];c.right.removeChild(c.right.lastChild);
      if(p.error){c.img.parentNode.removeChild(c.img);
        c.right.appendChild(el('div','error',p.error));return;}
      var b=bars(p);while(b.firstChild)c.right.appendChild(b.firstChild);
      if(gradcam)showCam(files[i],c);});})
  .catch(function(e){status.className='error';status.textContent='request failed: '+e;});}
input.addEventListener('change',function(){send(Array.prototype.slice.call(input.files));});
['dragenter','dragover'].forEach(function(t){drop.addEventListener(t,function(e){
  e.preventDefault();drop.className='over';});});
['dragleave','drop'].forEach(function(t){drop.addEventListener(t,function(e){
  e.preventDefault();drop.className='';});});
drop.addEventListener('drop',function(e){send(Array.prototype.slice.call(e.dataTransfer.files));});
})();
"""


def csp_header(header: bool = True) -> str:
    """The page's Content-Security-Policy: its own script (by hash), no other origin.

    Args:
        header: for the HTTP header (also forbids framing the page); False for the page's
            ``<meta>`` copy, where browsers ignore (and complain about) ``frame-ancestors``.

    Example:
        >>> "default-src 'none'" in csp_header()
        True
    """
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "img-src data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'"
    )
    return policy + "; frame-ancestors 'none'" if header else policy


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _card_rows(card: dict[str, Any]) -> str:
    c, h, w = card["input_size"]
    accuracy = (
        f"{card['accuracy']:.2%} ({card['accuracy_split']})"
        if card.get("accuracy") is not None
        else "not recorded (run cnnlab evaluate)"
    )
    classes = card["classes"]
    shown = ", ".join(classes[:40]) + (f" ... ({len(classes)} in all)" if len(classes) > 40 else "")
    rows = [
        ("model", f"{card.get('model') or 'unknown'} ({card['name']})"),
        ("classes", f"{len(classes)}: {shown}"),
        ("input", f"{c} x {h} x {w} ({'grayscale' if c == 1 else 'RGB'})"),
        ("accuracy", accuracy),
        ("trained", card.get("date") or "unknown"),
        ("backend", card["backend"] + ("" if card.get("gradcam") else " (no Grad-CAM)")),
    ]
    return "\n".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)


def render_page(card: dict[str, Any], limits: Limits) -> str:
    """The whole page for a model card (see :func:`cnnlab.serve.model.model_card`).

    Example:
        >>> card = {"name": "r", "model": "m", "classes": ["<b>"], "input_size": [1, 8, 8],
        ...         "backend": "onnx"}
        >>> "&lt;b&gt;" in render_page(card, Limits()) and "<b>" not in render_page(card, Limits())
        True
    """
    formats = ", ".join(SNIFFED_FORMATS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_esc(csp_header(header=False))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>cnnlab serve: {_esc(card["name"])}</title><style>{CSS}</style></head>
<body data-gradcam="{1 if card.get("gradcam") else 0}">
<h1>{_esc(card["name"])}</h1>
<table class="card" id="model-card">
{_card_rows(card)}
</table>
<div id="drop"><p>Drop images here, or choose them:
<input type="file" id="file-input" name="images" multiple accept="image/*"></p>
<p class="muted">{_esc(formats)}; up to {limits.max_images} images and
{limits.max_request_bytes / 2**20:.0f} MB per request, {limits.max_pixels:,} pixels per image.
Images stay on this machine: the page talks only to this server.</p></div>
<div id="status" class="muted"></div>
<div id="results"></div>
<script>{SCRIPT}</script>
</body></html>
"""
