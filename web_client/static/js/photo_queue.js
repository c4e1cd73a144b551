// Photos taken while the network is down are kept on the phone (IndexedDB), at full
// resolution, and uploaded when the link is back (issue 10: nothing lost). Each keeps the
// device's capture time (the file's own time, else when it was chosen); the server adds the
// time it received it, so the evidence shows both.

const DB = "takan-photos";
const STORE = "pending";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const out = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(out?.result ?? out);
      t.onerror = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

/** Keep a photo for later: {token, file, checkpoint, takenAt, fix}. */
export function hold(entry) {
  return tx("readwrite", (s) => s.add({ ...entry, heldAt: new Date().toISOString() }));
}

/** The photos waiting for this link's token, oldest first. */
export async function waiting(token) {
  const all = await tx("readonly", (s) => s.getAll());
  return (all || []).filter((e) => e.token === token).sort((a, b) => a.id - b.id);
}

export function release(id) {
  return tx("readwrite", (s) => s.delete(id));
}
