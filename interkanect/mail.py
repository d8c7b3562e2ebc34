"""Outgoing mail: over SMTP when one is configured, else into the `outbox` collection
(printed by `interkanect mail outbox`), so a development system needs no mail server."""
import datetime
import email.message
import logging

import aiosmtplib

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, settings, db):
        self.settings = settings
        self.db = db

    async def send(self, to, subject, body):
        if not self.settings.smtp_host:
            await self.db.outbox.insert_one({"to": to, "subject": subject, "body": body,
                                             "created_at": datetime.datetime.now(datetime.timezone.utc)})
            return
        message = email.message.EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        s = self.settings
        await aiosmtplib.send(message, hostname=s.smtp_host, port=s.smtp_port,
                              username=s.smtp_user or None, password=s.smtp_password or None,
                              start_tls=s.smtp_starttls, timeout=10)
        log.info("mail %r sent to %s", subject, to)
