"""Multi-turn layout editing: the conversation manager, session store and chat REPL."""
