"""The gap-filler: keeps local bar files complete against exchange calendars."""
