from rest_framework.routers import SimpleRouter

from contacts import views

router = SimpleRouter(trailing_slash=True)
router.register("tags", views.TagViewSet, basename="tag")

urlpatterns = router.urls
