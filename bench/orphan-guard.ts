// Preloaded (`node -r`) into the gateway children: stop gracefully when the bench process dies, even by SIGKILL.
// The CLI knows nothing of the bench; the IPC channel the bench opens closes when the bench dies in any way.
process.on('disconnect', function benchGone() {
  // SIGTERM, not exit: the gateway drains and closes through its own signal handling
  process.kill(process.pid, 'SIGTERM');
});
