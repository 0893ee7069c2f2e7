// tcs status page: renders /ui/events states, fetches a set's table on
// click. Every value from the server goes into the DOM with textContent.
(function () {
  'use strict';

  var STATES = {
    'optimal': { label: 'optimal', symbol: '✓' },
    'non-optimal': { label: 'non-optimal', symbol: '▲' },
    'pending-handoff': { label: 'pending handoff', symbol: '⇄' },
    'orphaned': { label: 'orphaned', symbol: '✕' }
  };
  var MAX_SETS_PER_CARD = 300; // beyond this, narrow with the filter

  var current = null;    // the last state received
  var streamOpen = false;
  var source = null;
  var filter = '';
  var selected = null;   // name of the set shown in the panel
  var shownKey = '';     // owner and epoch of that set when its table was fetched
  var inflight = null;   // AbortController of the table fetch

  function $(id) { return document.getElementById(id); }

  // A set's name (any cn) as one path segment. A browser resolves a
  // segment "." or ".." away even when encoded (WHATWG URL): such sets
  // cannot be shown here (curl and the Go client read them).
  function setSegment(name) { return encodeURIComponent(name); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  // ---- the stream ------------------------------------------------------

  function connect() {
    source = new EventSource('ui/events');
    source.addEventListener('open', function () {
      streamOpen = true;
      showConn();
    });
    source.addEventListener('state', function (ev) {
      var st;
      try { st = JSON.parse(ev.data); } catch (e) { return; }
      streamOpen = true;
      render(st);
    });
    source.addEventListener('error', function () {
      streamOpen = false;
      showConn();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gives up on an answer that is not a stream (say a
        // 503 while the agent shuts down): try again after a pause.
        source.close();
        setTimeout(connect, 3000);
      }
    });
  }

  function showConn() {
    var c = $('conn');
    var mode, text;
    if (!streamOpen) {
      mode = current ? 'reconnecting' : 'connecting';
      text = current ? 'reconnecting…' : 'connecting…';
    } else if (current && !current.connected) {
      mode = 'lost';
      text = 'directory unreachable: showing the last known state';
    } else {
      mode = 'live';
      text = 'live';
    }
    c.dataset.conn = mode;
    c.textContent = text;
  }

  // ---- rendering -------------------------------------------------------

  function render(st) {
    current = st;
    showConn();
    $('agent').textContent = st.agent; // the agent at this address may have been replaced
    document.title = 'tcs status — ' + st.agent;
    var sum = st.summary || {};
    var counts = document.querySelectorAll('#summary [data-count]');
    for (var i = 0; i < counts.length; i++) {
      var v = sum[counts[i].dataset.count];
      counts[i].textContent = v === undefined ? '–' : String(v);
    }
    var when = new Date(st.generated);
    $('generated').textContent = isNaN(when) ? 'updated' : 'updated ' + when.toLocaleTimeString();

    var focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.set : undefined;
    var main = $('locations');
    var frag = document.createDocumentFragment();
    var locs = st.locations || [];
    for (var j = 0; j < locs.length; j++) {
      frag.appendChild(card(locs[j], st.agent));
    }
    if (locs.length === 0) {
      frag.appendChild(el('p', 'empty', 'The directory holds no locations, agents or SmartSets yet.'));
    }
    main.replaceChildren(frag);
    if (focused !== undefined) {
      var again = findSet(focused);
      if (again) { again.focus(); }
    }
    refreshPanel();
  }

  function card(loc, self) {
    var c = el('section', 'card' + (loc.unlisted ? ' unlisted' : ''));
    c.dataset.location = loc.name;
    var head = el('div', 'card-head');
    head.appendChild(el('h2', null, loc.unlisted ? 'Without a location entry' : loc.name));
    if (loc.coordinates) {
      head.appendChild(el('span', 'coords', loc.coordinates));
    } else if (!loc.unlisted) {
      head.appendChild(el('span', 'coords', 'no coordinates'));
    }
    c.appendChild(head);

    var agents = loc.agents || [];
    c.appendChild(el('h3', null, agents.length === 1 ? '1 agent' : agents.length + ' agents'));
    if (agents.length === 0) {
      c.appendChild(el('p', 'none', 'no live agent here'));
    } else {
      var ul = el('ul', 'agents');
      for (var i = 0; i < agents.length; i++) {
        ul.appendChild(agentItem(agents[i], self, loc.unlisted));
      }
      c.appendChild(ul);
    }

    var sets = loc.sets || [];
    var shown = sets.filter(matches);
    var title = sets.length === 1 ? '1 SmartSet' : sets.length + ' SmartSets';
    if (filter) { title += ' (' + shown.length + ' match)'; }
    c.appendChild(el('h3', null, title));
    if (shown.length === 0) {
      c.appendChild(el('p', 'none', sets.length ? 'none matches the filter' : 'no SmartSet here'));
    } else {
      var list = el('ul', 'sets');
      for (var k = 0; k < shown.length && k < MAX_SETS_PER_CARD; k++) {
        var li = el('li');
        li.appendChild(setItem(shown[k], loc.unlisted));
        list.appendChild(li);
      }
      if (shown.length > MAX_SETS_PER_CARD) {
        list.appendChild(el('li', 'more', '… and ' + (shown.length - MAX_SETS_PER_CARD) + ' more: narrow them with the filter'));
      }
      c.appendChild(list);
    }
    return c;
  }

  function agentItem(a, self, unlisted) {
    var li = el('li');
    li.dataset.agent = a.name;
    li.appendChild(el('span', 'name', a.name));
    if (a.name === self) { li.appendChild(el('span', 'tag', 'this page')); }
    if (unlisted && a.location) { li.appendChild(el('span', 'tag', 'location ' + a.location)); }
    if (/^https?:\/\//i.test(a.endpoint || '')) {
      var link = el('a', 'endpoint', a.endpoint);
      link.href = a.endpoint;
      li.appendChild(link);
    } else if (a.endpoint) {
      li.appendChild(el('span', 'endpoint', a.endpoint));
    }
    li.appendChild(el('span', 'owned', 'owns ' + a.owned));
    return li;
  }

  function setItem(s, unlisted) {
    var info = STATES[s.state] || { label: s.state, symbol: '?' };
    var b = el('button', 'set state-' + (STATES[s.state] ? s.state : 'unknown'));
    b.type = 'button';
    b.dataset.set = s.name;
    b.dataset.owner = s.owner || '';
    b.dataset.state = s.state;
    b.dataset.epoch = String(s.epoch);
    b.setAttribute('aria-pressed', s.name === selected ? 'true' : 'false');

    var top = el('span', 'set-top');
    top.appendChild(el('span', 'set-name', s.name));
    top.appendChild(el('span', 'badge', info.symbol + ' ' + info.label));
    b.appendChild(top);

    var owner;
    if (!s.owner) {
      owner = 'no owner';
    } else if (s.state === 'orphaned') {
      owner = 'owner ' + s.owner + ' (gone)';
    } else if (s.owner_location && s.owner_location.toLowerCase() !== (s.location || '').toLowerCase()) {
      owner = 'owner ' + s.owner + ' in ' + s.owner_location;
    } else {
      owner = 'owner ' + s.owner;
    }
    var meta = owner + ' · epoch ' + s.epoch;
    if (unlisted && s.location) { meta += ' · location ' + s.location; }
    b.appendChild(el('span', 'set-meta', meta));
    if (s.release_request) {
      b.appendChild(el('span', 'set-note', '⇄ ' + s.release_request + ' asked for it'));
    }
    b.addEventListener('click', function () { openSet(s.name, b); });
    return b;
  }

  function matches(s) {
    if (!filter) { return true; }
    var info = STATES[s.state];
    var hay = [s.name, s.owner || '', s.state, info ? info.label : ''].join(' ').toLowerCase();
    return hay.indexOf(filter) >= 0;
  }

  function findSet(name) {
    var all = document.querySelectorAll('#locations [data-set]');
    for (var i = 0; i < all.length; i++) {
      if (all[i].dataset.set === name) { return all[i]; }
    }
    return null;
  }

  function findInState(name) {
    var locs = (current && current.locations) || [];
    for (var i = 0; i < locs.length; i++) {
      var sets = locs[i].sets || [];
      for (var j = 0; j < sets.length; j++) {
        if (sets[j].name === name) { return sets[j]; }
      }
    }
    return null;
  }

  // ---- the table panel -------------------------------------------------

  var opener = null; // the button that opened the panel, focused again on close

  function openSet(name, button) {
    selected = name;
    opener = button || null;
    var pressed = document.querySelectorAll('#locations [aria-pressed="true"]');
    for (var i = 0; i < pressed.length; i++) { pressed[i].setAttribute('aria-pressed', 'false'); }
    var b = findSet(name);
    if (b) { b.setAttribute('aria-pressed', 'true'); }
    $('panel').hidden = false;
    $('panel-title').textContent = name;
    fetchTable(name);
    $('panel-close').focus();
  }

  function closePanel() {
    selected = null;
    shownKey = '';
    if (inflight) { inflight.abort(); inflight = null; }
    $('panel').hidden = true;
    var pressed = document.querySelectorAll('#locations [aria-pressed="true"]');
    for (var i = 0; i < pressed.length; i++) { pressed[i].setAttribute('aria-pressed', 'false'); }
    if (opener && document.body.contains(opener)) { opener.focus(); }
    opener = null;
  }

  // After a new state: fetch the open table again when its set changed hands.
  function refreshPanel() {
    if (!selected) { return; }
    var s = findInState(selected);
    var key = s ? s.owner + '@' + s.epoch : '';
    if (key !== shownKey) { fetchTable(selected); }
  }

  function fetchTable(name) {
    if (inflight) { inflight.abort(); }
    var ctl = new AbortController();
    inflight = ctl;
    var s = findInState(name);
    shownKey = s ? s.owner + '@' + s.epoch : '';
    $('panel-meta').textContent = 'loading…';
    $('panel-error').hidden = true;
    // The agent answers for the sets it owns and redirects (307) to the
    // owner for the others; fetch follows, and every agent allows CORS.
    fetch('v1/smartsets/' + setSegment(name), {
      headers: { 'Accept': 'application/json' },
      cache: 'no-store',
      signal: ctl.signal
    }).then(function (resp) {
      return resp.json().then(function (body) { return [resp, body]; }, function () { return [resp, null]; });
    }).then(function (pair) {
      if (ctl !== inflight || name !== selected) { return; }
      inflight = null;
      var resp = pair[0], body = pair[1];
      if (!resp.ok || !body || !Array.isArray(body.columns)) {
        var msg = body && body.error ? body.error : 'no details';
        showError(resp.status + ' ' + (resp.statusText || '') + ': ' + msg);
        return;
      }
      showTable(body, resp.url);
    }).catch(function (err) {
      if (err && err.name === 'AbortError') { return; }
      if (ctl !== inflight) { return; }
      inflight = null;
      showError('cannot fetch the table (' + (err && err.message ? err.message : err) +
        '): its owner may be down; the swarm takes its sets over once its lease expires');
    });
  }

  function showError(msg) {
    $('panel-meta').textContent = '';
    $('panel-table').tHead.replaceChildren();
    $('panel-table').tBodies[0].replaceChildren();
    var e = $('panel-error');
    e.textContent = msg;
    e.hidden = false;
  }

  function showTable(t, url) {
    var meta = $('panel-meta');
    meta.replaceChildren();
    var rows = t.rows || [];
    var parts = [rows.length + (rows.length === 1 ? ' row' : ' rows'), 'epoch ' + t.epoch, 'owner ' + t.owner];
    try { parts.push('served by ' + new URL(url).host); } catch (e) { /* no URL: leave it out */ }
    meta.appendChild(document.createTextNode(parts.join(' · ')));
    if (t.stale) {
      var age = typeof t.age_seconds === 'number' ? ', ' + Math.round(t.age_seconds) + ' s old' : '';
      var stale = el('span', 'stale', ' · ⚠ stale' + age + (t.error ? ': ' + t.error : ''));
      meta.appendChild(stale);
    }
    $('panel-error').hidden = true;

    var cols = t.columns;
    var tr = el('tr');
    for (var i = 0; i < cols.length; i++) {
      var th = el('th', null, cols[i]);
      th.scope = 'col';
      tr.appendChild(th);
    }
    $('panel-table').tHead.replaceChildren(tr);
    var frag = document.createDocumentFragment();
    for (var r = 0; r < rows.length; r++) {
      var row = el('tr');
      for (var c = 0; c < cols.length; c++) {
        var text = cell(rows[r][cols[c]]);
        row.appendChild(breakable(el('td', text.length <= 24 ? 'short' : null), text));
      }
      frag.appendChild(row);
    }
    $('panel-table').tBodies[0].replaceChildren(frag);
  }

  // breakable fills e with text, letting long DNs wrap after their commas.
  function breakable(e, text) {
    var parts = text.split(',');
    for (var i = 0; i < parts.length; i++) {
      if (i > 0) {
        e.appendChild(document.createTextNode(','));
        e.appendChild(document.createElement('wbr'));
      }
      e.appendChild(document.createTextNode(parts[i]));
    }
    return e;
  }

  function cell(v) {
    if (Array.isArray(v)) { return v.join(', '); }
    if (v === null || v === undefined) { return ''; }
    return String(v);
  }

  // ---- start -----------------------------------------------------------

  document.addEventListener('DOMContentLoaded', function () {
    $('panel-close').addEventListener('click', closePanel);
    document.addEventListener('keydown', function (ev) {
      if (ev.key === 'Escape' && selected) { closePanel(); }
    });
    $('filter').addEventListener('input', function (ev) {
      filter = ev.target.value.trim().toLowerCase();
      if (current) { render(current); }
    });
    connect();
  });
})();
