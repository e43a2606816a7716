// sclbench browse: draws a record's sample cards from the page's JSON block, with filters, search by id
// and keyboard navigation. Runs from file:// with nothing fetched; every text goes in as textContent.
// The filter state lives in the URL fragment (#outcome=wrong&flip=ab&q=123), so a view can be linked.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("browse-data").textContent);
  var samples = data.samples;
  var comparing = !!data.labels;
  var A = comparing ? data.labels[0] : "", B = comparing ? data.labels[1] : "";
  var cardsBox = document.getElementById("cards");
  var countBox = document.getElementById("count");
  var brokenBox = document.getElementById("broken");
  var CHUNK = 300;  // cards drawn at a time; more as the reader scrolls
  var state = { outcome: "", flip: "", q: "", facets: {} };
  var shown = [];   // the filtered samples, in page order
  var drawn = 0;
  var focused = -1;
  var broken = 0;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmt(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    if (v === null || v === undefined) return "-";
    return String(v);
  }

  // ---- filters -------------------------------------------------------------------------------------
  var facetNames = [];
  samples.forEach(function (s) {
    Object.keys(s.facets || {}).forEach(function (k) { if (facetNames.indexOf(k) < 0) facetNames.push(k); });
  });

  function counted(values) {
    var counts = {};
    values.forEach(function (v) { counts[v] = (counts[v] || 0) + 1; });
    return Object.keys(counts).sort().map(function (v) { return [v, counts[v]]; });
  }

  function select(name, label, options) {
    var wrap = el("label", "control");
    wrap.appendChild(el("span", null, label + " "));
    var box = el("select");
    box.name = name;
    box.appendChild(new Option("all (" + samples.length + ")", ""));
    options.forEach(function (o) { box.appendChild(new Option(o[1], o[0])); });
    box.addEventListener("change", function () { setFilter(name, box.value); });
    wrap.appendChild(box);
    return wrap;
  }

  function buildControls() {
    var box = document.getElementById("controls");
    var outcomes = counted(samples.map(function (s) { return s.outcome; }));
    box.appendChild(select("outcome", comparing ? A + " outcome" : "outcome",
      outcomes.map(function (o) { return [o[0], o[0] + " (" + o[1] + ")"]; })));
    facetNames.forEach(function (name) {
      var values = samples.filter(function (s) { return s.facets && name in s.facets; })
        .map(function (s) { return s.facets[name]; });
      box.appendChild(select("facet:" + name, name,
        counted(values).map(function (o) { return [o[0], o[0] + " (" + o[1] + ")"]; })));
    });
    if (comparing) {
      var ab = samples.filter(function (s) { return s.flip === "ab"; }).length;
      var ba = samples.filter(function (s) { return s.flip === "ba"; }).length;
      box.appendChild(select("flip", "compare", [
        ["ab", A + " right, " + B + " wrong / " + A + " higher (" + ab + ")"],
        ["ba", B + " right, " + A + " wrong / " + B + " higher (" + ba + ")"],
        ["any", "either flip (" + (ab + ba) + ")"],
        ["same", "same outcome (" + (samples.length - ab - ba) + ")"]
      ]));
    }
    var search = el("label", "control");
    search.appendChild(el("span", null, "id "));
    var input = el("input");
    input.type = "search";
    input.id = "search";
    input.placeholder = "search by id  ( / )";
    input.addEventListener("input", function () { setFilter("q", input.value.trim()); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && shown.length) { e.preventDefault(); focusCard(0); }
    });
    search.appendChild(input);
    box.appendChild(search);
    box.appendChild(el("span", "keys", "j / k or ↓ / ↑: next / previous card"));
  }

  function matches(s) {
    if (state.outcome && s.outcome !== state.outcome) return false;
    if (state.flip) {
      var flip = s.flip || "";
      if (state.flip === "any" ? !flip : state.flip === "same" ? !!flip : flip !== state.flip) return false;
    }
    for (var name in state.facets) {
      if (state.facets[name] && (!s.facets || s.facets[name] !== state.facets[name])) return false;
    }
    if (state.q && s.id.toLowerCase().indexOf(state.q.toLowerCase()) < 0) return false;
    return true;
  }

  function setFilter(name, value) {
    if (name.indexOf("facet:") === 0) state.facets[name.slice(6)] = value;
    else state[name] = value;
    writeHash();
    apply();
  }

  function writeHash() {
    var parts = [];
    ["outcome", "flip", "q"].forEach(function (k) {
      if (state[k]) parts.push(k + "=" + encodeURIComponent(state[k]));
    });
    Object.keys(state.facets).forEach(function (k) {
      if (state.facets[k]) parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(state.facets[k]));
    });
    try { history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname); } catch (e) { /* a browser refusing it: the view still filters */ }
  }

  function readHash() {
    state = { outcome: "", flip: "", q: "", facets: {} };
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      var key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      var value = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
      if (key === "outcome" || key === "flip" || key === "q") state[key] = value;
      else if (facetNames.indexOf(key) >= 0) state.facets[key] = value;
    });
    var controls = document.getElementById("controls");
    Array.prototype.forEach.call(controls.querySelectorAll("select"), function (box) {
      box.value = box.name.indexOf("facet:") === 0 ? (state.facets[box.name.slice(6)] || "") : (state[box.name] || "");
    });
    document.getElementById("search").value = state.q;
  }

  // ---- cards ---------------------------------------------------------------------------------------
  function picture(m, cls) {
    var fig = el("figure", cls);
    if (m.src) {
      var img = el("img");
      img.alt = m.label || "";
      img.title = m.label || "";
      img.addEventListener("error", function () {
        broken += 1;
        brokenBox.hidden = false;
        brokenBox.textContent = broken + " thumbnail(s) failed to load (was the thumbs/ folder moved?)";
      });
      img.src = m.src;
      fig.appendChild(img);
    } else {
      var missing = el("div", "missing", m.label);
      if (m.missing) missing.appendChild(el("small", null, m.missing));
      fig.appendChild(missing);
    }
    if (m.src && m.label && m.frame === null) fig.appendChild(el("figcaption", null, m.label));
    return fig;
  }

  function badge(who, outcome, score) {
    return el("span", "badge " + outcome, (who ? who + ": " : "") + outcome + (score === null ? "" : " " + fmt(score)));
  }

  function rows(list, cls) {
    var dl = el("dl", "rows" + (cls ? " " + cls : ""));
    list.forEach(function (r) { dl.appendChild(el("dt", null, r[0])); dl.appendChild(el("dd", null, fmt(r[1]))); });
    return dl;
  }

  function drawCard(s, index) {
    var card = el("article", "card " + s.outcome);
    card.tabIndex = -1;
    card.dataset.index = index;
    card.dataset.id = s.id;
    var head = el("div", "head");
    head.appendChild(el("span", "sid", s.id));
    head.appendChild(badge(comparing ? A : "", s.outcome, s.score));
    if (s.b) head.appendChild(badge(B, s.b.outcome, s.b.score));
    if (s.flip) head.appendChild(el("span", "badge flip", s.flip === "ab" ? A + " ✓ " + B + " ✗" : B + " ✓ " + A + " ✗"));
    card.appendChild(head);
    if (s.media && s.media.length) {
      var media = el("div", "media" + (s.strip ? " strip" : "") + (s.pair ? " pair" : ""));
      s.media.forEach(function (m) { media.appendChild(picture(m)); });
      if (s.strip && s.media[0] && s.media[0].label) media.appendChild(el("div", "caption", s.media[0].label));
      card.appendChild(media);
    }
    if (s.text) card.appendChild(el("p", "text", s.text));
    if (s.rows && s.rows.length) card.appendChild(rows(s.rows));
    if (s.answers) {
      var table = el("table", "answers");
      var headRow = el("tr");
      ["annotator answer", "×", "VQA score"].forEach(function (h) { headRow.appendChild(el("th", null, h)); });
      table.appendChild(headRow);
      s.answers.forEach(function (a) {
        var tr = el("tr", a.picked ? "picked" : "");
        tr.appendChild(el("td", null, a.answer));
        tr.appendChild(el("td", "num", a.count));
        tr.appendChild(el("td", "num", fmt(a.credit)));
        table.appendChild(tr);
      });
      card.appendChild(table);
    }
    if (s.top) {
      card.appendChild(el("div", "who", "top " + s.top.length + " retrieved" + (comparing ? " by " + A : "")));
      // Pictures side by side (a row of thumbnails), captions as a numbered list.
      var pictures = s.top.some(function (c) { return c.media; });
      var ol = el("ol", "top" + (pictures ? " thumbs" : ""));
      s.top.forEach(function (c, i) {
        var li = el("li", c.true ? "true" : "");
        if (c.media) c.media.forEach(function (m) { li.appendChild(picture(m, "small")); });
        if (c.text) li.appendChild(el("span", "cand", c.text));
        var score = typeof c.score === "number" ? c.score.toFixed(2) : fmt(c.score);
        li.appendChild(el("small", null, pictures ? (c.true ? "✓ " : "#" + (i + 1) + " ") + score
          : (c.true ? "✓ true · " : "") + score));
        ol.appendChild(li);
      });
      card.appendChild(ol);
    } else if (s.topMissing) {
      card.appendChild(el("p", "dim", s.topMissing));
    }
    if (s.b && s.b.rows.length) {
      card.appendChild(el("div", "who", B + (data.compare ? " (" + data.compare.checkpoint + ")" : "")));
      card.appendChild(rows(s.b.rows, "b"));
    }
    var facets = el("div", "facets");
    Object.keys(s.facets || {}).forEach(function (k) { facets.appendChild(el("span", "tag", k + ": " + s.facets[k])); });
    card.appendChild(facets);
    card.addEventListener("click", function () { focused = index; });
    return card;
  }

  function drawMore() {
    var end = Math.min(drawn + CHUNK, shown.length);
    var frag = document.createDocumentFragment();
    for (var i = drawn; i < end; i++) frag.appendChild(drawCard(shown[i], i));
    cardsBox.appendChild(frag);
    drawn = end;
    more.hidden = drawn >= shown.length;
    more.textContent = "show more (" + (shown.length - drawn) + " left)";
  }

  function apply() {
    shown = samples.filter(matches);
    cardsBox.textContent = "";
    drawn = 0;
    focused = -1;
    drawMore();
    var text = shown.length + " of " + samples.length + " samples shown";
    if (data.total > samples.length) text += " (" + data.total + " in the record; this page holds the first " + samples.length + ", failures first)";
    countBox.textContent = text;
    countBox.dataset.shown = shown.length;
  }

  function focusCard(i) {
    if (!shown.length) return;
    i = Math.max(0, Math.min(i, shown.length - 1));
    while (i >= drawn) drawMore();
    var card = cardsBox.children[i];
    focused = i;
    card.focus();
    card.scrollIntoView({ block: "nearest" });
  }

  var more = el("button", "more", "show more");
  more.type = "button";
  more.hidden = true;
  more.addEventListener("click", drawMore);
  cardsBox.insertAdjacentElement("afterend", more);
  if ("IntersectionObserver" in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; }) && drawn < shown.length) drawMore();
    }).observe(more);
  }

  document.addEventListener("keydown", function (e) {
    var typing = e.target && (e.target.tagName === "INPUT" || e.target.tagName === "SELECT");
    if (e.key === "/" && !typing) { e.preventDefault(); document.getElementById("search").focus(); return; }
    if (e.key === "Escape" && typing) { e.target.blur(); return; }
    if (typing || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); focusCard(focused + 1); }
    else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); focusCard(focused < 0 ? 0 : focused - 1); }
  });
  window.addEventListener("hashchange", function () { readHash(); apply(); });

  buildControls();
  readHash();
  apply();
})();
