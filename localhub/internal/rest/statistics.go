package rest

import "net/http"

func handleDeviceStatistics(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stats, err := d.Registry.Stats()
		if err != nil {
			writeError(w, d.Now(), classic, fromRegistry(err, ""))
			return
		}
		writeJSON(w, http.StatusOK, statisticsJSON(stats))
	})
}

func handleServiceStatistics(d Deps) http.Handler {
	type response struct {
		ConnectedDeviceCount int `json:"connectedDeviceCount"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, response{ConnectedDeviceCount: d.Devices.ConnectedCount()})
	})
}
