"""One adapter module per backbone family; each is imported only when its family is first used."""
