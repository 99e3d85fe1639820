from config.routing import ApiRouter
from webhooks import views

router = ApiRouter()
router.register("webhooks", views.EndpointViewSet, basename="webhook")

urlpatterns = [*router.urls]
