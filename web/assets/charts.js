// Switchboard's own small charts, drawn as SVG in the page: bars (grouped or stacked) and
// lines over time buckets, and horizontal stacked bars (a turn's latency by stage). No
// charting library and nothing from another origin: the pages work offline. Colours come
// from classes (s0…s5) in history.css, so the charts follow the light and dark themes.
'use strict';

const SBCharts = (() => {
  const NS = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // nice rounds a maximum up to 1, 2 or 5 times a power of ten, so the axis reads well.
  function nice(max) {
    if (!(max > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  }

  // every says which of n labels to print so that at most k show.
  const every = (n, k) => Math.max(1, Math.ceil(n / k));

  function legend(series) {
    return SBHtml('ul', {class: 'legend'}, series.map((s, i) =>
      SBHtml('li', {}, SBHtml('span', {class: 'swatch s' + (s.color ?? i)}), s.name)));
  }

  // SBHtml makes an HTML element (legends sit beside the SVG).
  function SBHtml(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  const W = 640, H = 220, PAD = {left: 56, right: 12, top: 12, bottom: 34};

  // frame draws the axes and grid of a chart of n buckets up to max, and returns the SVG and
  // the functions that place a bucket and a value.
  function frame(labels, max, format, title) {
    const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title, preserveAspectRatio: 'xMidYMid meet'});
    root.append(svg('title', {text: title}));
    const iw = W - PAD.left - PAD.right, ih = H - PAD.top - PAD.bottom;
    const n = Math.max(labels.length, 1);
    const x = (i) => PAD.left + (i + 0.5) * iw / n;
    const y = (v) => PAD.top + ih - (Math.max(0, v) / max) * ih;
    for (let k = 0; k <= 4; k++) {
      const v = max * k / 4;
      root.append(svg('line', {class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v)}));
      root.append(svg('text', {class: 'tick', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end', text: format(v)}));
    }
    const step = every(labels.length, 8);
    labels.forEach((l, i) => {
      if (i % step) return;
      root.append(svg('text', {class: 'tick', x: x(i), y: H - PAD.bottom + 16, 'text-anchor': 'middle', text: l}));
    });
    return {root, x, y, band: iw / n, base: PAD.top + ih};
  }

  // bars draws series of values per label as bars side by side (or stacked).
  // opts: {labels, series: [{name, values, color?}], format, title, stacked}.
  function bars(container, opts) {
    const {labels, series, format = String, title = '', stacked = false} = opts;
    const totals = labels.map((_, i) => stacked ? series.reduce((a, s) => a + (s.values[i] || 0), 0) : Math.max(0, ...series.map((s) => s.values[i] || 0)));
    let max = nice(Math.max(0, ...totals));
    // Counts keep whole ticks: four steps of a whole number.
    if (opts.integer) max = Math.max(4, Math.ceil(max / 4) * 4);
    const f = frame(labels, max, format, title);
    const width = f.band * 0.8 / (stacked ? 1 : series.length);
    labels.forEach((label, i) => {
      let top = 0;
      series.forEach((s, j) => {
        const v = s.values[i] || 0;
        const x0 = f.x(i) - f.band * 0.4 + (stacked ? 0 : j * width);
        const y0 = stacked ? f.y(top + v) : f.y(v);
        const h = stacked ? f.y(top) - f.y(top + v) : f.base - f.y(v);
        top += v;
        f.root.append(svg('rect', {class: 'bar s' + (s.color ?? j), x: x0, y: y0, width: Math.max(width - 1, 1), height: Math.max(h, 0),
          'data-series': s.name, 'data-value': v}, svg('title', {text: label + ' · ' + s.name + ': ' + format(v)})));
      });
    });
    container.replaceChildren(f.root, legend(series));
    container.setAttribute('data-points', String(labels.length));
  }

  // lines draws series of values per label as lines with points; a null value is a gap.
  // opts: {labels, series: [{name, values, color?}], format, title, max}.
  function lines(container, opts) {
    const {labels, series, format = String, title = ''} = opts;
    const all = series.flatMap((s) => s.values.filter((v) => Number.isFinite(v)));
    const max = opts.max || nice(Math.max(0, ...all));
    const f = frame(labels, max, format, title);
    series.forEach((s, j) => {
      let d = '';
      s.values.forEach((v, i) => {
        if (!Number.isFinite(v)) return;
        d += (d && Number.isFinite(s.values[i - 1]) ? 'L' : 'M') + f.x(i).toFixed(1) + ' ' + f.y(v).toFixed(1);
        f.root.append(svg('circle', {class: 'dot s' + (s.color ?? j), cx: f.x(i), cy: f.y(v), r: 3, 'data-series': s.name, 'data-value': v},
          svg('title', {text: labels[i] + ' · ' + s.name + ': ' + format(v)})));
      });
      if (d) f.root.insertBefore(svg('path', {class: 'line s' + (s.color ?? j), d}), f.root.querySelector('circle'));
    });
    container.replaceChildren(f.root, legend(series));
    container.setAttribute('data-points', String(labels.length));
  }

  // stackedRows draws one horizontal bar per row, its segments end to end on one scale.
  // opts: {rows: [{label, values: [..], total?}], segments: [{name, color?}], format, title}.
  function stackedRows(container, opts) {
    const {rows, segments, format = String, title = ''} = opts;
    const sums = rows.map((r) => r.values.reduce((a, v) => a + (v || 0), 0));
    const max = nice(Math.max(0, ...sums, ...rows.map((r) => r.total || 0)));
    // Narrower than the time charts: it sits in a call's side panel, and its text must read
    // at that size.
    const w = 400, rowH = 22, left = 56, right = 62, top = 4;
    const h = top + rows.length * (rowH + 6) + 22;
    const root = svg('svg', {viewBox: `0 0 ${w} ${h}`, class: 'chart rows', role: 'img', 'aria-label': title});
    root.append(svg('title', {text: title}));
    const iw = w - left - right;
    const x = (v) => left + (v / max) * iw;
    rows.forEach((r, i) => {
      const y = top + i * (rowH + 6);
      const g = svg('g', {class: 'row', 'data-row': i});
      g.append(svg('text', {class: 'tick', x: left - 6, y: y + rowH / 2 + 4, 'text-anchor': 'end', text: r.label}));
      let at = 0;
      r.values.forEach((v, j) => {
        if (!(v > 0)) return;
        const seg = segments[j];
        g.append(svg('rect', {class: 'bar s' + (seg.color ?? j), x: x(at), y, width: Math.max(x(at + v) - x(at), 1), height: rowH,
          'data-stage': seg.name, 'data-value': v}, svg('title', {text: r.label + ' · ' + seg.name + ': ' + format(v)})));
        at += v;
      });
      const total = r.total || at;
      g.append(svg('text', {class: 'tick total', x: x(at) + 6, y: y + rowH / 2 + 4, text: format(total)}));
      root.append(g);
    });
    const axisY = top + rows.length * (rowH + 6) + 14;
    for (let k = 0; k <= 4; k++) {
      root.append(svg('text', {class: 'tick', x: x(max * k / 4), y: axisY, 'text-anchor': 'middle', text: format(max * k / 4)}));
    }
    container.replaceChildren(root, legend(segments));
    container.setAttribute('data-rows', String(rows.length));
  }

  return {bars, lines, stackedRows, nice};
})();
