package main

import "github.com/deskd/deskd/internal/config"

// loadDatabaseConfig loads the configuration for commands that only need the database.
func (g *globals) loadDatabaseConfig() (*config.Config, error) {
	return config.LoadDatabase(g.configPath)
}
