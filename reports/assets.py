"""The report's inline stylesheet and script (kept here so html.py is only structure).

The page is complete without the script: every table is rendered on the server side. The
script only adds column sorting, a row filter and copy buttons; it never builds markup from
data (textContent only), and the page's Content-Security-Policy admits exactly this script.
"""

CSS = """
:root{--ok:#2f7d4f;--fail:#c62828;--err:#d9480f;--nc:#6b7280;--ref:#7b2d8e;--ink:#1f2933;
--muted:#5f6b7a;--line:#e3e7ec;--bg:#f4f6f8;--card:#fff;--code:#0f172a}
*{box-sizing:border-box}
html{background:var(--bg)}
body{margin:0;color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14.5px;margin:0 0 6px;font-weight:600}
section h3:not(:first-of-type){margin-top:18px}
section h2+h3{margin-top:0}
a{color:#1f5fa8}
code,pre,.mono{font-family:ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
header.top{display:flex;justify-content:space-between;align-items:center;gap:16px;padding:18px 22px;
border-radius:12px;color:#fff;background:var(--ok)}
header.top.v-FAILED{background:var(--fail)}header.top.v-ERRORS{background:var(--err)}
header.top.v-NOT-CHECKED{background:var(--nc)}
header.top .sub{margin:2px 0 0;opacity:.92}
header.top .overall{font-size:26px;font-weight:700;letter-spacing:.04em;white-space:nowrap}
nav.toc{margin:12px 2px;display:flex;flex-wrap:wrap;gap:6px 16px;font-size:13.5px}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:16px 20px;margin:16px 0}
p.lead{margin:-4px 0 10px;color:var(--muted)}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 7px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:11.5px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);font-weight:600;white-space:nowrap}
tbody th{text-transform:none;letter-spacing:0;font-size:13px;color:var(--ink)}
th.c{text-align:center}
td.name{font-weight:600;white-space:nowrap}
td.name .impl{font-weight:400;color:var(--muted);font-size:12px}
table.compact th{white-space:normal;vertical-align:bottom}table.compact th,table.compact td{padding:5px}
td.mono{font-size:12.5px;white-space:nowrap}
td.net{font-size:12.5px;min-width:240px}
h4{font-size:13px;margin:14px 0 4px;color:var(--muted)}
.small{font-size:11.5px}
.where{color:var(--muted);font-size:12.5px}
p.note{color:var(--muted);font-size:12.5px;margin:8px 0 0}
td.n,th.n{text-align:right}
td.n{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px;white-space:nowrap}
tbody tr:hover{background:#f8fafc}
tfoot td{font-weight:600;border-top:2px solid var(--line)}
tr.cap td,p.cap{color:var(--muted);font-style:italic;font-weight:400}
.wrap{overflow-x:auto}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:11.5px;font-weight:700;color:#fff;
white-space:nowrap;letter-spacing:.02em}
.s-passed,.v-PASSED{background:var(--ok)}.s-failed,.v-FAILED{background:var(--fail)}
.s-error,.v-ERRORS{background:var(--err)}.s-not_checkable,.v-NOT-CHECKED{background:var(--nc)}
.s-reference_mismatch{background:var(--ref)}
.zero{color:#b8bec7}
.bad{color:var(--fail);font-weight:600}
dl.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:8px 18px;margin:0}
dl.meta div{border-left:3px solid var(--line);padding-left:9px}
dl.meta dt{font-size:11.5px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted)}
dl.meta dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:18px}
figure{margin:0;border:1px solid var(--line);border-radius:10px;padding:10px 12px}
figure h3{margin-bottom:2px}
figcaption{color:var(--muted);font-size:12.5px;margin-top:4px}
svg.plot{max-width:100%;height:auto;display:block;margin:0 auto}
.plot-note{color:var(--muted);font-style:italic;padding:30px 10px;text-align:center}
details.problem{border:1px solid var(--line);border-left:5px solid var(--fail);border-radius:8px;padding:6px 12px;margin:8px 0}
details.problem.reference_mismatch{border-left-color:var(--ref)}
details.problem>summary{cursor:pointer;line-height:1.9}
details.problem>summary .where{display:inline-block;max-width:100%;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap;vertical-align:bottom;margin-left:10px}
details.problem[open]>summary{border-bottom:1px solid var(--line);margin-bottom:6px;padding-bottom:4px}
details.problem dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
details.problem dt{color:var(--muted)}details.problem dd{margin:0;overflow-wrap:anywhere}
table.matrix{width:auto;margin-bottom:10px}
.scroll{max-height:640px;overflow:auto;border:1px solid var(--line);border-radius:8px}
.scroll thead th{position:sticky;top:0;background:#fff;box-shadow:0 1px 0 var(--line);z-index:1}
.msg{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
.repro-box{position:relative}
pre.repro{background:var(--code);color:#e5edf7;padding:10px 12px;border-radius:7px;overflow:auto;margin:6px 0 2px;
white-space:pre;max-height:320px}
button.copy{position:absolute;right:8px;top:6px;font-size:11.5px;border:0;border-radius:5px;padding:2px 9px;
background:#334155;color:#fff;cursor:pointer}
table.grid-table{width:auto;min-width:50%}
td.cell{min-width:92px;text-align:center;font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
td.cell small{display:block;font-family:system-ui,sans-serif;color:var(--muted);font-size:11px}
.n0{background:#e3f1e6}.n1{background:#eef4d9}.n2{background:#fbeccb}.n3{background:#f6cfcb;color:var(--fail);font-weight:600}
.nc{background:#eef0f3;color:var(--muted)}
.pill{display:inline-block;padding:0 6px;border-radius:6px;margin-left:4px}
td.why{color:var(--muted);font-style:italic;font-size:12.5px}
details.reasons{margin:8px 0 0;color:var(--muted);font-size:12.5px}
details.reasons>summary{cursor:pointer}
details.reasons ul{margin:4px 0 0;padding-left:18px}
details.reasons .count{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;color:var(--ink)}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted);margin-top:8px}
.legend .sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
#verdict-filter{width:100%;max-width:360px;padding:5px 9px;margin:0 0 8px;border:1px solid #cbd2d9;border-radius:6px;font:inherit}
html.js th.sortable{cursor:pointer}
html.js th.sortable:after{content:" ↕";color:#b8bec7;font-size:10px}
th[aria-sort=ascending]:after{content:" ↑"!important;color:var(--ink)!important}
th[aria-sort=descending]:after{content:" ↓"!important;color:var(--ink)!important}
#diagnosis{border-color:#e7b9b5}
article.diag{border-left:5px solid var(--fail);padding:2px 0 2px 14px;margin:12px 0}
article.diag p.headline{font-size:16px;font-weight:650;margin:0 0 6px;overflow-wrap:anywhere}
ul.findings{margin:0 0 6px;padding-left:20px}ul.findings li{margin:2px 0;overflow-wrap:anywhere}
p.confidence{margin:4px 0;font-weight:600}p.alt,p.repro-head{margin:4px 0;color:var(--muted)}
td.message{white-space:pre-wrap;overflow-wrap:anywhere;min-width:320px;font-size:13.5px}
details.every{margin-top:8px}details.every>summary{cursor:pointer;color:#1f5fa8;margin-bottom:6px}
footer{color:var(--muted);font-size:12.5px;text-align:center;margin-top:24px}
@media print{section{break-inside:avoid}button.copy,#verdict-filter{display:none}}
"""

JS = """
(function () {
  document.documentElement.classList.add("js");
  function key(cell) {
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.trim().toLowerCase() : (v === "" ? -Infinity : parseFloat(v));
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    var i = th.cellIndex;
    th.classList.add("sortable");
    th.tabIndex = 0;
    function sort() {
      var body = th.closest("table").tBodies[0], asc = th.getAttribute("aria-sort") !== "ascending";
      th.parentNode.querySelectorAll("th").forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a.cells[i]), y = key(b.cells[i]);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }).forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
  });
  var table = document.getElementById("all-verdicts");
  if (table) {
    var box = document.createElement("input");
    box.type = "search"; box.id = "verdict-filter";
    box.placeholder = "Filter rows (check, implementation, network, status...)";
    box.setAttribute("aria-label", "Filter the verdict table");
    table.parentNode.insertBefore(box, table);
    box.addEventListener("input", function () {
      var q = box.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }
  document.querySelectorAll("pre.repro").forEach(function (pre) {
    var b = document.createElement("button");
    b.type = "button"; b.className = "copy"; b.textContent = "Copy";
    b.addEventListener("click", function () {
      function select() {
        var r = document.createRange(); r.selectNodeContents(pre);
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        b.textContent = "Selected: press Ctrl+C";
      }
      if (navigator.clipboard) {
        navigator.clipboard.writeText(pre.textContent).then(function () { b.textContent = "Copied"; }, select);
      } else { select(); }
    });
    pre.parentNode.insertBefore(b, pre);
  });
})();
"""
