"""Outgoing mail: over SMTP when one is configured, else into the `outbox` collection
(printed by `interkanect mail outbox`), so a development system needs no mail server.

`Mailer` is for the gateway's event loop; `send_now` for actor processes, which may block.
"""
import datetime
import email.message
import logging
import smtplib

import aiosmtplib

log = logging.getLogger(__name__)
SMTP_TIMEOUT_S = 10


def _message(settings, to, subject, body):
    message = email.message.EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def _outbox_entry(to, subject, body):
    return {"to": to, "subject": subject, "body": body, "created_at": datetime.datetime.now(datetime.timezone.utc)}


class Mailer:
    def __init__(self, settings, db):
        self.settings = settings
        self.db = db

    async def send(self, to, subject, body):
        s = self.settings
        if not s.smtp_host:
            await self.db.outbox.insert_one(_outbox_entry(to, subject, body))
            return
        await aiosmtplib.send(_message(s, to, subject, body), hostname=s.smtp_host, port=s.smtp_port,
                              username=s.smtp_user or None, password=s.smtp_password or None,
                              start_tls=s.smtp_starttls, timeout=SMTP_TIMEOUT_S)
        log.info("mail %r sent to %s", subject, to)


def send_now(settings, db, to, subject, body):
    """Blocking send, for an actor process (`db` is a synchronous pymongo database)."""
    s = settings
    if not s.smtp_host:
        db.outbox.insert_one(_outbox_entry(to, subject, body))
        return
    with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
        if s.smtp_starttls:
            smtp.starttls()
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password)
        smtp.send_message(_message(s, to, subject, body))
    log.info("mail %r sent to %s", subject, to)


def send_many(settings, db, mails):
    """Blocking send of many mails [(to, subject, body)]: one SMTP connection for all of them,
    or one insert into the outbox. Returns how many went."""
    s = settings
    if not mails:
        return 0
    if not s.smtp_host:
        db.outbox.insert_many([_outbox_entry(to, subject, body) for to, subject, body in mails], ordered=False)
        return len(mails)
    with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
        if s.smtp_starttls:
            smtp.starttls()
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password)
        for to, subject, body in mails:
            smtp.send_message(_message(s, to, subject, body))
    log.info("%d mails sent over one connection", len(mails))
    return len(mails)
