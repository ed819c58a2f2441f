resource "fipd_instance" "web1" {
  name       = "web-1"
  project_id = "web-team"
  # Changing the host migrates the instance and its floating IPs, in place.
  host = fipd_host.compute1.name

  timeouts {
    update = "10m" # how long a migration may take to be ACTIVE on the new host
  }
}
