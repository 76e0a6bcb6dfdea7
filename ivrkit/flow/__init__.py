"""The flow language: YAML source → located nodes → step objects → static checks."""
