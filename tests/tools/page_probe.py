#!/usr/bin/env python3
"""page_probe: drive a real headless Chromium over its DevTools protocol.

  page_probe.py URL [--spki HASH] [--shot-size WxH]

Starts Debian's chromium (headless, its own profile folder), opens URL and
then reads commands on stdin, one a line, answering each on stdout:
  wait SECONDS JS   evaluate JS until it is truthy or SECONDS pass:
                    "ok wait <value>" or "fail wait <last value>"
  eval JS           "ok eval <value as JSON>"
  shot FILE         a PNG screenshot: "ok shot FILE <bytes>"
  quit
--spki HASH: trust the server certificate with that SPKI (base64 SHA-256),
as Chromium's --ignore-certificate-errors-spki-list does; nothing else is
trusted beyond the system's store. The browser talks only to URL's host.
"""
import base64, json, os, shutil, subprocess, sys, tempfile, time, urllib.request

import websocket  # Debian python3-websocket


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    url, spki, size = args[0], None, "1280,900"
    i = 1
    while i < len(args):
        if args[i] == "--spki":
            spki = args[i + 1]; i += 2
        elif args[i] == "--shot-size":
            size = args[i + 1].replace("x", ","); i += 2
        else:
            print("page_probe: unknown argument %r" % args[i], file=sys.stderr)
            return 2
    prof = tempfile.mkdtemp(prefix="page_probe.")
    cmd = [shutil.which("chromium") or "/usr/bin/chromium", "--headless=new", "--no-sandbox",
           "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--disable-background-networking", "--disable-sync", "--window-size=" + size,
           "--user-data-dir=" + prof, "--remote-debugging-port=0", "about:blank"]
    if spki:
        cmd.insert(1, "--ignore-certificate-errors-spki-list=" + spki)
    br = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(prof, "chromium.err"), "w"))
    try:
        port_file = os.path.join(prof, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if time.time() > deadline or br.poll() is not None:
                print("fail start chromium did not open its DevTools port", flush=True)
                return 1
            time.sleep(0.05)
        port = open(port_file).read().split("\n")[0].strip()
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%s/json" % port, timeout=10))
        page = [t for t in targets if t.get("type") == "page"][0]
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        nid = [0]

        def call(method, **params):
            nid[0] += 1
            ws.send(json.dumps({"id": nid[0], "method": method, "params": params}))
            while True:
                m = json.loads(ws.recv())
                if m.get("id") == nid[0]:
                    if "error" in m:
                        raise RuntimeError(m["error"].get("message", "error"))
                    return m.get("result", {})

        def evaluate(js):
            r = call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
            if "exceptionDetails" in r:
                return None, r["exceptionDetails"].get("text", "exception")
            return r.get("result", {}).get("value"), None

        call("Page.enable")
        call("Page.navigate", url=url)
        print("ok start", flush=True)
        for line in sys.stdin:
            line = line.rstrip("\n")
            if not line:
                continue
            verb, _, rest = line.partition(" ")
            if verb == "quit":
                break
            if verb == "wait":
                secs, _, js = rest.partition(" ")
                end = time.time() + float(secs)
                val, err = None, None
                while True:
                    val, err = evaluate(js)
                    if val and not err:
                        print("ok wait " + json.dumps(val), flush=True)
                        break
                    if time.time() > end:
                        print("fail wait " + json.dumps(val if not err else err), flush=True)
                        break
                    time.sleep(0.1)
            elif verb == "eval":
                val, err = evaluate(rest)
                print(("ok eval " + json.dumps(val)) if not err else ("fail eval " + json.dumps(err)), flush=True)
            elif verb == "shot":
                data = base64.b64decode(call("Page.captureScreenshot", format="png")["data"])
                with open(rest, "wb") as f:
                    f.write(data)
                print("ok shot %s %d" % (rest, len(data)), flush=True)
            else:
                print("fail %s unknown command" % verb, flush=True)
        ws.close()
        return 0
    finally:
        br.terminate()
        try:
            br.wait(timeout=10)
        except subprocess.TimeoutExpired:
            br.kill()
        shutil.rmtree(prof, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
