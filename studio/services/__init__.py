"""The inventory rules and transactions, shared by the JSON API and the HTML admin."""
