-- docker-compose.yml: the databases of auth and catalog-order, created once with the volume.
CREATE DATABASE auth;
CREATE DATABASE catalog;
