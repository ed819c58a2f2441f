data "fipd_network" "link1" {
  name = "link-1"
}
