package app

import "os"

func ignored() { _ = os.Getenv("FROM_TEST_FILE") }
