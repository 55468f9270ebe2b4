// codewatch console: small enhancements; every page works without them.
//  - times: exact times on hover in the reader's own time zone;
//  - live pages (body[data-refresh]) fetch themselves every few seconds and
//    swap in the parts marked data-live, keeping scroll, focus, open
//    <details> and any text selection; they say when they last updated,
//    and stop with a link to sign in again when the session has ended.
'use strict';
(function () {
  var zone = '';
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { /* old browser */ }
  var full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  var clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

  function localize(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d)) return;
      if (t.hasAttribute('data-clock')) t.textContent = clock.format(d);
      t.title = full.format(d) + (zone ? ' (' + zone + ')' : '');
    });
  }

  localize(document);

  var every = Number(document.body.getAttribute('data-refresh') || 0) * 1000;
  var status = document.getElementById('live-status');
  if (!every || !status || !window.fetch || !window.DOMParser) return;
  var text = document.getElementById('live-text');
  var announce = document.getElementById('announce');
  var last = {}; // the server's HTML of each live part, as last swapped in
  document.querySelectorAll('[data-live]').forEach(function (el) { last[el.id] = null; });
  var stopped = false;

  function stale(why) {
    status.setAttribute('data-state', 'stale');
    var at = document.getElementById('updated-at');
    text.textContent = why + (at ? '; last updated ' + at.textContent : '') + '. Retrying.';
  }

  function updated(now) {
    status.setAttribute('data-state', 'ok');
    text.textContent = 'Updated ';
    var t = document.createElement('time');
    t.id = 'updated-at';
    t.setAttribute('datetime', now.toISOString());
    t.setAttribute('data-clock', '');
    text.appendChild(t);
    localize(text);
  }

  function signedOut() {
    stopped = true;
    status.setAttribute('data-state', 'stale');
    text.textContent = 'Your session has ended. ';
    var a = document.createElement('a');
    a.href = '/console/signin?next=' + encodeURIComponent(location.pathname + location.search);
    a.textContent = 'Sign in again';
    text.appendChild(a);
  }

  function selecting() {
    var s = window.getSelection && window.getSelection();
    return s && !s.isCollapsed && s.toString() !== '';
  }

  function swap(doc) {
    var focused = document.activeElement && document.activeElement.id;
    doc.querySelectorAll('[data-live]').forEach(function (fresh) {
      var cur = document.getElementById(fresh.id);
      if (!cur || last[fresh.id] === fresh.innerHTML) return;
      var open = {};
      cur.querySelectorAll('details[open]').forEach(function (d) { open[d.id] = true; });
      last[fresh.id] = fresh.innerHTML;
      cur.innerHTML = fresh.innerHTML;
      cur.querySelectorAll('details').forEach(function (d) { if (open[d.id]) d.open = true; });
      localize(cur);
    });
    if (focused && document.activeElement === document.body) {
      var el = document.getElementById(focused);
      if (el) el.focus({ preventScroll: true });
    }
    if (doc.title && doc.title !== document.title) {
      document.title = doc.title;
      if (announce) announce.textContent = doc.title.replace(/ · codewatch$/, '');
    }
  }

  var busy = false;
  function refresh() {
    if (stopped || busy || document.hidden || selecting()) return;
    busy = true;
    fetch(location.href, { headers: { 'X-Codewatch-Live': '1' }, credentials: 'same-origin', cache: 'no-store', redirect: 'manual' })
      .then(function (r) {
        if (r.status === 401 || r.type === 'opaqueredirect') { signedOut(); return; }
        if (!r.ok) { stale('codewatch answered ' + r.status); return; }
        return r.text().then(function (html) {
          swap(new DOMParser().parseFromString(html, 'text/html'));
          updated(new Date());
        });
      })
      .catch(function () { stale('Cannot reach codewatch'); })
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, every);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refresh(); });
})();
