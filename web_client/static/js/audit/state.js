// What the auditor's page shows right now, shared by its modules (and window.takanAudit, for tests).

export const $ = (id) => document.getElementById(id);

export const ui = {
  view: null, // "login" | "list" | "detail"
  staff: null, // {user, permissions} when a staff member is logged in (the cookie is used)
  list: { items: [], cursor: null, query: null },
  detail: null, // {id, record, manifest, events, report, tracks, trackNames, origin}
  replay: null, // the Replay of the open inspection
  thumbs: new Map(), // key -> Promise<objectURL>
  currentSeq: null, // the timeline event at the playback position
  selectedSeq: null, // the timeline event last clicked
};
