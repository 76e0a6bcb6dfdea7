"""The engine: runs a flow on any channel (live AGI or simulated) and keeps the call's journal."""
