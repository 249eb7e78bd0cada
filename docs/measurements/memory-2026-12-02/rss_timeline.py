#!/usr/bin/env python3
"""Run a command; sample VmRSS/VmHWM of the process (or of its newest loom-train descendant) every 2 ms; print stdout lines with timestamps."""
import subprocess, sys, time, threading, os
cmd = sys.argv[1:]
t0 = time.time()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
out = []
def reader():
    for line in p.stdout:
        out.append((time.time() - t0, "OUT " + line.rstrip()))
threading.Thread(target=reader, daemon=True).start()
def descends(pid):
    while pid > 1:
        if pid == p.pid: return True
        try:
            pid = int(open(f'/proc/{pid}/stat').read().rsplit(')',1)[1].split()[1])
        except Exception: return False
    return False
def target():
    # rank 0 = the lowest-pid loom-train under us
    pids = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/cmdline','rb') as f: c = f.read()
                if b'loom-train' in c.split(b'\0')[0] and descends(int(d)):
                    pids.append(int(d))
            except Exception: pass
    return min(pids) if pids else None
last = None; pid = None
while p.poll() is None:
    if pid is None: pid = target()
    if pid:
        try:
            with open(f'/proc/{pid}/status') as f: s = f.read()
            v = {l.split(':')[0]: l.split()[1] for l in s.splitlines() if l.startswith(('VmRSS','VmHWM'))}
            rss, hwm = int(v['VmRSS'])/1024, int(v['VmHWM'])/1024
            if last is None or abs(rss - last) >= 0.5:
                out.append((time.time()-t0, f"RSS {rss:.1f} MiB hwm {hwm:.1f}")); last = rss
        except Exception: pid = None
    time.sleep(0.002)
time.sleep(0.1)
for t, l in sorted(out): print(f"{t:7.3f} {l}")
