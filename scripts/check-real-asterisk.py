#!/usr/bin/env python3
# Checks against a real Asterisk 22 what Lineup relies on: the callback prompts play, a
# missing sound fails, and a Local channel's second half is named X;2 (docs/REAL-ASTERISK.md).
#
# Needs: a box with deploy/asterisk's http.conf and ari.conf (ARI on 127.0.0.1:8088, user
# `lineup`), the prompts of deploy/asterisk/sounds installed, and in extensions.conf
#   [lineup-park]
#   exten => s,1,Answer()
#    same => n,Wait(60)
# Run: pip install websocket-client; LINEUP_ARI_PASSWORD=... scripts/check-real-asterisk.py
import json, os, threading, time, urllib.request, base64, websocket
BASE = os.environ.get("LINEUP_ARI_URL", "http://127.0.0.1:8088/ari")
PASSWORD = os.environ.get("LINEUP_ARI_PASSWORD", "change-me")
AUTH = "Basic " + base64.b64encode(f"lineup:{PASSWORD}".encode()).decode()
events = []
def on_message(ws, msg):
    events.append((time.time(), json.loads(msg)))
ws = websocket.WebSocketApp(BASE.replace("http", "ws", 1) + "/events?app=lineup-check&subscribeAll=true",
                            header={"Authorization": AUTH}, on_message=on_message)
threading.Thread(target=ws.run_forever, daemon=True).start()
time.sleep(1.5)
def rest(method, path):
    req = urllib.request.Request(BASE + path, method=method, headers={"Authorization": AUTH})
    with urllib.request.urlopen(req) as r:
        body = r.read()
        return json.loads(body) if body else None
ch = rest("POST", "/channels?endpoint=Local/s@lineup-park&app=lineup-check&channelId=cb-2-check")
time.sleep(1.5)
ids = sorted({e["channel"]["id"] for _, e in events if "channel" in e})
print("channel ids seen:", ids)
rest("POST", "/channels/cb-2-check/answer")
def play(media, wait):
    start = time.time()
    pb = rest("POST", f"/channels/cb-2-check/play?media={media}")
    deadline = time.time() + wait
    while time.time() < deadline:
        done = [e for t, e in events if e.get("type") == "PlaybackFinished" and e["playback"]["id"] == pb["id"]]
        if done:
            return done[0]["playback"]["state"], round(time.time() - start, 2)
        time.sleep(0.05)
    return "no PlaybackFinished", wait
for name in ["lineup-callback-offer", "lineup-callback-confirmed", "lineup-callback-number-is",
             "lineup-callback-confirm-keys", "lineup-callback-enter-number", "lineup-callback-invalid",
             "queue-youarenext", "lineup-no-such-prompt"]:
    print(name, *play("sound:" + name, 12))
rest("DELETE", "/channels/cb-2-check")
