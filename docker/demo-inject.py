"""The compose demo's injector: a few messages into each listener of docker/relay.conf, so
that `docker-compose -f docker/compose.yml up` shows mail reaching the sink from each
binding's address with its EHLO name. Bounded: ROUNDS rounds, then it exits."""

import smtplib
import sys
import time
from email.message import EmailMessage

LISTENERS = {"transactional": ("127.0.0.20", 2525), "marketing": ("127.0.0.20", 2526)}
ROUNDS, PAUSE, WAIT = 3, 2.0, 60.0


def send(group: str, host: str, port: int, n: int) -> str:
    msg = EmailMessage()
    msg["From"] = "demo@relay.test"
    msg["To"] = f"someone{n}@example.test"
    msg["Subject"] = f"compose demo {group} {n}"
    msg.set_content("Hello from the compose demo.\n")
    with smtplib.SMTP(host, port, timeout=30, local_hostname="injector.relay.test") as smtp:
        smtp.ehlo()
        smtp.send_message(msg)
        return str(smtp.noop()[1], "ascii", "replace")


def main() -> int:
    deadline = time.monotonic() + WAIT
    for n in range(ROUNDS):
        for group, (host, port) in LISTENERS.items():
            while True:
                try:
                    send(group, host, port, n)
                    print(f"inject: message {n} into {host}:{port} ({group}): 250", flush=True)
                    break
                except OSError as error:  # relay still starting
                    if time.monotonic() > deadline:
                        print(f"inject: {host}:{port}: {error}", file=sys.stderr)
                        return 1
                    time.sleep(1)
        time.sleep(PAUSE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
