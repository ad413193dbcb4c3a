// A websocket that stays up: reconnects with backoff, pings to notice a dead connection, and
// shows its state in the page's [data-live-state] badge (connecting, live, reconnecting, ...).
(() => {
  "use strict";
  const FINAL_CODES = new Set([4403, 4404]); // no role / no such run: retrying will not help

  function liveSocket({ path, onMessage, onOpen, heartbeatSeconds = 15 }) {
    const badge = document.querySelector("[data-live-state]");
    let socket = null;
    let delay = 300;
    let stopped = false;
    let opens = 0;
    let pingTimer = null;
    let lastHeard = 0;

    function setState(state) {
      if (!badge) return;
      badge.hidden = false;
      badge.textContent = state;
      badge.dataset.liveState = state;
      badge.className = `live-state ${state}`;
    }

    function heartbeat() {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      // Silence for two beats: the connection is dead even if the browser has not noticed.
      if (Date.now() - lastHeard > 2 * heartbeatSeconds * 1000) {
        socket.close(4000, "heartbeat lost");
        return;
      }
      socket.send(JSON.stringify({ type: "ping" }));
    }

    function connect() {
      if (stopped) return;
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${scheme}://${location.host}${path()}`);
      socket = ws;
      ws.onopen = () => {
        delay = 300;
        lastHeard = Date.now();
        setState("live");
        if (onOpen) onOpen(opens++ > 0);
      };
      ws.onmessage = (message) => {
        lastHeard = Date.now();
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        if (data.type !== "pong") onMessage(data, api);
      };
      ws.onclose = (event) => {
        if (socket !== ws || stopped) return;
        if (FINAL_CODES.has(event.code)) {
          setState("offline");
          return;
        }
        setState("reconnecting");
        // Jitter spreads the reconnects of many pages after a server restart.
        setTimeout(connect, delay * (0.75 + Math.random() / 2));
        delay = Math.min(delay * 2, 3000);
      };
    }

    const api = {
      setState,
      stop(state) {
        stopped = true;
        clearInterval(pingTimer);
        if (state) setState(state);
        if (socket) socket.close(1000);
      },
      reconnect() {
        // Drop this connection and open a new one at once (e.g. after noticing a gap).
        if (socket) socket.close(4001, "resync");
      },
    };
    setState("connecting");
    pingTimer = setInterval(heartbeat, heartbeatSeconds * 1000);
    connect();
    return api;
  }

  // A live table (runs list, review queue): follow `path` and re-fetch the table through htmx
  // (with the page's filters) when `changedIds(message)` reports rows; those rows are highlighted.
  function liveTable({ configId, tableId, event, path, rowSelector, changedIds }) {
    const config = document.getElementById(configId);
    if (!config || !window.htmx) return;
    const heartbeatSeconds = JSON.parse(config.textContent);
    const changed = new Set();
    let timer = null;

    function refreshSoon() {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        const table = document.getElementById(tableId);
        if (table) htmx.trigger(table, event);
      }, 250);
    }

    document.body.addEventListener("htmx:afterSettle", () => {
      for (const id of changed) {
        document.querySelector(`#${tableId} ${rowSelector(id)}`)?.classList.add("changed");
      }
      changed.clear();
    });

    liveSocket({
      path: () => path,
      heartbeatSeconds,
      onOpen: (again) => {
        if (again) refreshSoon(); // changes made while we were away
      },
      onMessage: (data) => {
        if (data.type !== "changed") return;
        for (const id of changedIds(data)) changed.add(id);
        refreshSoon();
      },
    });
  }

  // Tables and graphs that may scroll sideways inside themselves (narrow screens) can be
  // scrolled from the keyboard: they take focus.
  function focusableScrollers() {
    for (const box of document.querySelectorAll("main table, main figure.graph")) {
      if (!box.hasAttribute("tabindex")) box.tabIndex = 0;
    }
  }
  document.addEventListener("DOMContentLoaded", focusableScrollers);
  document.addEventListener("htmx:afterSettle", focusableScrollers);

  window.plannerweb = Object.assign(window.plannerweb || {}, { liveSocket, liveTable });
})();
