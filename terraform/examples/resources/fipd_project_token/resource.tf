resource "fipd_project_token" "web" {
  project_id  = "web-team"
  description = "CI of the web team"
}

output "web_token" {
  value     = fipd_project_token.web.token
  sensitive = true
}
