-- 003: messages an older sleepwatch deferred by a day because Telegram refused the bot token
-- (it read 401 Unauthorized as the message's fault) are due again at once: a refused token now
-- holds every message until a token works (core/outbox.py), and a restart sends them.
UPDATE outbox SET next_try_at = created_at
WHERE sent_at IS NULL
  AND last_error LIKE 'permanent: telegram refused:%Unauthorized%';
