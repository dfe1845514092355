"""sleepwatch's Telegram face: alerts to the phone, chat commands, the morning summary."""
