"""What `easyblocks validate` and `easyblocks graph` show: a model described as data, as a
table and as a picture."""
