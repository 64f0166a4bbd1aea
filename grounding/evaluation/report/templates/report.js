(function(){
"use strict";
var D = JSON.parse(document.getElementById("report-data").textContent);
var B = document.body, errors = 0, broken = 0, PAGE = D.page_size || 60;
window.addEventListener("error", function(){ errors++; B.dataset.errors = errors; });
function $(id){ return document.getElementById(id); }
function esc(s){ return String(s).replace(/[&<>"']/g, function(c){
  return {"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]; }); }
function opts(sel, values, labels){ sel.innerHTML = values.map(function(v, k){
  return '<option value="' + esc(v) + '">' + esc(labels ? labels[k] : v) + "</option>"; }).join(""); }
function hashState(){ var s = {}; location.hash.replace(/^#/, "").split("&").forEach(function(kv){
  if (!kv) return; var i = kv.indexOf("="); s[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] =
  i < 0 ? "" : decodeURIComponent(kv.slice(i + 1)); }); return s; }
function imgTag(src, alt){ return src ? '<img loading="lazy" src="' + esc(src) + '" alt="' + esc(alt) +
  '" onerror="window.__brokenImage()">' : '<span class="nomap">no score map</span>'; }
window.__brokenImage = function(){ broken++; B.dataset.brokenImages = broken; };
function tags(r){ var t = ['<span class="tag">size ' + esc(r.size) + "</span>", '<span class="tag">area ' + esc(r.area) +
  "</span>", '<span class="tag">' + esc(r.length) + " words</span>"];
  if (r.phrase_type) t.push('<span class="tag">' + esc(r.phrase_type) + "</span>");
  return t.join(""); }
function figure(r){ var run = r.run, im = r.image_thumb, mp = r.map_thumb;
  if (r.thumb){ im = run.thumb_dir + r.thumb + ".jpg"; mp = r.has_map ? run.thumb_dir + r.thumb + "-m.jpg" : null; }
  return '<div class="imgs"><a href="' + esc(run.images[r.image] || "#") + '" title="open the original image">' +
  imgTag(im, "boxes") + "</a><span>" + imgTag(mp, "score map") + "</span></div>"; }
D.runs.forEach(function(run){ run.rows.forEach(function(r){ r.run = run; if (r.phrase_type == null) r.phrase_type = ""; }); });
function outcome(r){ return '<span class="badge ' + (r.hit ? "hit" : "miss") + '">' + (r.hit ? "hit" : "miss") + "</span>"; }
function uniq(rows, k){ var seen = {}; rows.forEach(function(r){ if (r[k] !== "" && r[k] != null) seen[r[k]] = 1; });
  return Object.keys(seen); }
function ordered(k, present){ var o = (D.buckets[k] || []).filter(function(b){ return present.indexOf(b) >= 0; });
  return o.concat(present.filter(function(b){ return o.indexOf(b) < 0; }).sort()); }

// ------------------------------------------------------------------ gallery of one run
var G = {run: $("g-run"), filter: $("g-filter"), size: $("g-size"), area: $("g-area"), type: $("g-type"),
         len: $("g-len"), sort: $("g-sort"), q: $("g-q"), page: 0};
opts(G.run, D.runs.map(function(r, i){ return String(i); }), D.runs.map(function(r, i){
  return (i + 1) + ": " + r.label + " (" + r.split + ")"; }));
opts(G.filter, ["all", "hit", "miss"], ["hits and misses", "hits only", "misses only"]);
opts(G.sort, ["index", "iou", "-iou"], ["row index", "IoU ascending (worst first)", "IoU descending"]);
function fillBuckets(){
  var rows = D.runs[+G.run.value].rows;
  [["size", "size"], ["area", "area"], ["len", "length"], ["type", "phrase_type"]].forEach(function(p){
    var present = ordered(p[1], uniq(rows, p[1])), keep = G[p[0]].value;
    opts(G[p[0]], ["all"].concat(present), ["all"].concat(present));
    G[p[0]].value = present.indexOf(keep) >= 0 ? keep : "all";
    G[p[0]].parentNode.style.display = present.length ? "" : "none";
  });
}
function gMatch(r){
  var f = G.filter.value, q = G.q.value.trim().toLowerCase();
  return (f === "all" || (f === "hit") === !!r.hit) && (G.size.value === "all" || r.size === G.size.value) &&
    (G.area.value === "all" || r.area === G.area.value) &&
    (G.type.value === "all" || r.phrase_type === G.type.value) && (G.len.value === "all" || r.length === G.len.value) &&
    (!q || r.phrase.toLowerCase().indexOf(q) >= 0);
}
function sorter(key){ return key === "iou" ? function(a, b){ return a.iou - b.iou || a.index - b.index; } :
  key === "-iou" ? function(a, b){ return b.iou - a.iou || a.index - b.index; } :
  function(a, b){ return a.index - b.index; }; }
function pager(el, page, n, go){
  var pages = Math.max(1, Math.ceil(n / PAGE));
  el.innerHTML = '<button data-d="-1"' + (page <= 0 ? " disabled" : "") + '>&larr; previous</button> page ' +
    (page + 1) + " of " + pages + ' <button data-d="1"' + (page >= pages - 1 ? " disabled" : "") + ">next &rarr;</button>";
  el.querySelectorAll("button").forEach(function(b){ b.onclick = function(){ go(page + (+b.dataset.d)); }; });
}
function writeHash(){
  var s = hashState(), st = {run: G.run.value, filter: G.filter.value, size: G.size.value, area: G.area.value,
    type: G.type.value, len: G.len.value, sort: G.sort.value, q: G.q.value, page: String(G.page)};
  Object.keys(st).forEach(function(k){ s[k] = st[k]; });
  var h = Object.keys(s).filter(function(k){ return s[k] !== "" && s[k] !== "all" && !(k === "page" && s[k] === "0") &&
    !(k === "run" && s[k] === "0") && !(k === "sort" && s[k] === "index"); })
    .map(function(k){ return encodeURIComponent(k) + "=" + encodeURIComponent(s[k]); }).join("&");
  history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
}
function renderGallery(){
  var run = D.runs[+G.run.value], rows = run.rows.filter(gMatch).sort(sorter(G.sort.value));
  var pages = Math.max(1, Math.ceil(rows.length / PAGE));
  G.page = Math.min(Math.max(0, G.page), pages - 1);
  var show = rows.slice(G.page * PAGE, (G.page + 1) * PAGE);
  $("g-grid").innerHTML = show.map(function(r){
    return '<div class="card gcard" data-hit="' + r.hit + '" data-index="' + r.index + '">' + figure(r) +
      '<div class="ph">&ldquo;' + esc(r.phrase) + '&rdquo;</div><div>' + outcome(r) + " &middot; IoU " +
      r.iou.toFixed(3) + ' &middot; <span class="muted">row ' + r.index + "</span></div>" +
      (r.error ? '<div class="err">' + esc(r.error) + "</div>" : "") +
      "<div>" + tags(r) + "</div></div>"; }).join("");
  var hits = rows.filter(function(r){ return r.hit; }).length;
  $("g-count").textContent = rows.length + " of " + run.rows.length + " rows match (" + hits + " hits, " +
    (rows.length - hits) + " misses; Acc " + (rows.length ? (100 * hits / rows.length).toFixed(1) + "%" : "–") + ")";
  pager($("g-pager"), G.page, rows.length, function(p){ G.page = p; renderGallery(); window.scrollTo(0, $("gallery").offsetTop); });
  pager($("g-pager2"), G.page, rows.length, function(p){ G.page = p; renderGallery(); window.scrollTo(0, $("gallery").offsetTop); });
  B.dataset.visible = rows.length; B.dataset.shown = show.length;
  B.dataset.shownHits = show.filter(function(r){ return r.hit; }).length;
  writeHash();
}
["filter", "size", "area", "type", "len", "sort"].forEach(function(k){ G[k].onchange = function(){ G.page = 0; renderGallery(); }; });
G.q.oninput = function(){ G.page = 0; renderGallery(); };
G.run.onchange = function(){ G.page = 0; fillBuckets(); renderGallery(); };

// ------------------------------------------------------------------ flips between two runs
var C = {a: $("c-a"), b: $("c-b"), kind: $("c-kind"), page: 0};
var pairs = D.groups.filter(function(g){ return g.length > 1; });
if (pairs.length){
  var members = [].concat.apply([], pairs), lab = function(i){ return (i + 1) + ": " + D.runs[i].label; };
  opts(C.a, members.map(String), members.map(lab)); opts(C.b, members.map(String), members.map(lab));
  C.b.value = String(pairs[0][1]); C.a.value = String(pairs[0][0]);
  opts(C.kind, ["both", "ab", "ba", "any"], ["all flips", "A hit, B miss", "A miss, B hit", "all rows"]);
}
function renderCompare(){
  if (!pairs.length) return;
  var A = D.runs[+C.a.value], Bq = D.runs[+C.b.value], byB = {};
  if (A.split !== Bq.split){ $("c-table").innerHTML = '<p class="err">These runs are on different splits (' +
    esc(A.split) + " vs " + esc(Bq.split) + "): pick two runs of one split.</p>"; $("c-grid").innerHTML = ""; return; }
  Bq.rows.forEach(function(r){ byB[r.index] = r; });
  var both = [], n = [0, 0, 0, 0];
  A.rows.forEach(function(r){ var s = byB[r.index]; if (!s) return; both.push([r, s]);
    n[(r.hit ? 0 : 2) + (s.hit ? 0 : 1)]++; });
  $("c-table").innerHTML = '<table class="cmpbox"><tr><th></th><th>B hit</th><th>B miss</th></tr><tr><th>A hit</th><td class="num">' +
    n[0] + '</td><td class="num neg">' + n[1] + '</td></tr><tr><th>A miss</th><td class="num pos">' + n[2] +
    '</td><td class="num">' + n[3] + "</td></tr></table><p>" + both.length + " rows in both runs; B − A = " +
    (n[2] - n[1]) + " rows (" + (both.length ? (100 * (n[2] - n[1]) / both.length).toFixed(2) : "0") + " pp).</p>";
  var k = C.kind.value, sel = both.filter(function(p){ return k === "any" || (k === "ab" && p[0].hit && !p[1].hit) ||
    (k === "ba" && !p[0].hit && p[1].hit) || (k === "both" && p[0].hit !== p[1].hit); });
  sel.sort(function(x, y){ return Math.abs(y[1].iou - y[0].iou) - Math.abs(x[1].iou - x[0].iou) ||
    x[0].index - y[0].index; });
  var pages = Math.max(1, Math.ceil(sel.length / PAGE)); C.page = Math.min(Math.max(0, C.page), pages - 1);
  $("c-grid").innerHTML = sel.slice(C.page * PAGE, (C.page + 1) * PAGE).map(function(p){
    return '<div class="card" data-hit="' + p[1].hit + '" data-index="' + p[0].index + '"><div class="ph">&ldquo;' +
      esc(p[0].phrase) + '&rdquo; <span class="muted">row ' + p[0].index + '</span></div><div class="pair">' +
      [p[0], p[1]].map(function(r, j){
      return "<div><b>" + (j ? "B" : "A") + "</b> " + outcome(r) + " IoU " + r.iou.toFixed(3) + figure(r) + "</div>"; }).join("") +
      "</div><div>" + tags(p[0]) + "</div></div>"; }).join("");
  $("c-count").textContent = sel.length + " rows";
  pager($("c-pager"), C.page, sel.length, function(p){ C.page = p; renderCompare(); });
  B.dataset.flips = n[1] + n[2];
}
if (pairs.length){ [C.a, C.b, C.kind].forEach(function(el){ el.onchange = function(){ C.page = 0; renderCompare(); }; }); }

// ------------------------------------------------------------------ start from the URL hash
var s = hashState();
if (s.run && D.runs[+s.run]) G.run.value = s.run;
fillBuckets();
["filter", "size", "area", "type", "len", "sort"].forEach(function(k){
  if (s[k] && Array.prototype.some.call(G[k].options, function(o){ return o.value === s[k]; })) G[k].value = s[k]; });
if (s.q) G.q.value = s.q;
G.page = Math.max(0, parseInt(s.page || "0", 10) || 0);
renderGallery(); renderCompare();
B.dataset.errors = errors; B.dataset.brokenImages = broken; B.dataset.ready = "1";
B.dataset.scriptMs = Math.round(performance.now());
})();
