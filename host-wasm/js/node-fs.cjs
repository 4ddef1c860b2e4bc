// The file primitives statemesh's Node persistence needs, over node:fs's synchronous calls.
// The Rust side (src/node_disk.rs) runs the native file adapter on top of them, so a store
// directory written here has the native byte format. Synchronous on purpose: the adapter's
// ordering argument (write, fsync, rename, fsync the directory) needs each step finished before
// the next, and a CP write resolves only after its fsync anyway.
'use strict';
const fs = require('node:fs');

module.exports = {
  mkdirp(dir) { fs.mkdirSync(dir, { recursive: true }); },
  list(dir) { return fs.readdirSync(dir); },
  read(path) { return fs.readFileSync(path); },
  create(path) { return fs.openSync(path, 'w'); },
  openExisting(path) { return fs.openSync(path, 'r+'); },
  size(fd) { return fs.fstatSync(fd).size; },
  write(fd, data, position) {
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(fd, data, done, data.length - done, position + done);
    }
  },
  truncate(fd, len) { fs.ftruncateSync(fd, len); },
  sync(fd) { fs.fdatasyncSync(fd); },
  close(fd) { fs.closeSync(fd); },
  rename(from, to) { fs.renameSync(from, to); },
  remove(path) { fs.unlinkSync(path); },
  syncDir(dir) {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  },
  // Node has no flock, so the lock is a file naming the owning process, created exclusively.
  // A file left by a process that is gone is taken over. (A native process holds an flock on
  // `path` itself; the two kinds of lock do not see each other: do not open one directory from
  // Node and natively at the same time.)
  lock(path) {
    fs.closeSync(fs.openSync(path, 'a'));
    const pidFile = `${path}.node-pid`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(pidFile, 'wx');
        fs.writeSync(fd, String(process.pid));
        fs.closeSync(fd);
        return;
      } catch (e) {
        if (e.code !== 'EEXIST') throw e;
      }
      const owner = Number.parseInt(fs.readFileSync(pidFile, 'utf8'), 10);
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) {
        const err = new Error(`locked by process ${owner}`);
        err.code = 'EWOULDBLOCK';
        throw err;
      }
      fs.rmSync(pidFile, { force: true });
    }
    const err = new Error('lock file keeps reappearing');
    err.code = 'EWOULDBLOCK';
    throw err;
  },
  unlock(path) { fs.rmSync(`${path}.node-pid`, { force: true }); },
};

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}
